"""`python -m sparsetune ...` is the `sparsetune` command."""

from .cli import main

main()
