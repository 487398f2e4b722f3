"""The Hugging Face hub, offline first: know in a second whether it can be reached.

A model id or a task with no local data means the hub. Offline, transformers and
datasets retry for a minute and print a warning per retry before failing with a
traceback. Asked first, this module says in about a second (or at once, under
`HF_HUB_OFFLINE=1`) that the hub cannot be reached, so the caller can use what is in
the local cache or fail with one line naming the ways out.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

CONNECT_SECONDS = 2.0


def offline_requested() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


@functools.lru_cache(maxsize=None)
def _connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_SECONDS):
            return True
    except OSError:
        return False


def hub_reachable() -> bool:
    """False under HF_HUB_OFFLINE, or when the hub's host does not accept a connection
    within CONNECT_SECONDS (asked once per process)."""
    if offline_requested():
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    return _connects(endpoint.hostname or "huggingface.co", port)


def is_local(name: str) -> bool:
    """A folder (or a path-looking name): never the hub."""
    return Path(name).exists() or name.startswith((".", "/", "~")) or name.count("/") > 1  # hub ids: name or org/name


def cached_commit(repo_id: str, revision: str | None = None) -> str | None:
    """The commit of `repo_id` at `revision` (default: main) that the local hub cache
    holds, or None. The cache keeps each commit's files under snapshots/<commit>/, and
    a download (or an offline load) goes through it, so after loading this is the
    commit the files came from."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    return Path(found).parent.name if isinstance(found, str) else None


def cached_model(repo_id: str, revision: str | None = None) -> bool:
    """Whether the local hub cache holds this model's config (so it loads offline)."""
    return cached_commit(repo_id, revision) is not None
