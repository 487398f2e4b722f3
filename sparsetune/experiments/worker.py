"""`python -m sparsetune.experiments.worker`: run one grid cell given as JSON on stdin."""

import sys

from .runner import worker_main

if __name__ == "__main__":
    sys.exit(worker_main())
