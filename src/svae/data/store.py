"""Where data lives: a read-only mirror, a writable cache, and verified downloads.

The data directory comes from, in order: an explicit argument (``--data-dir``), the environment
variable ``SVAE_DATA_DIR``, and a per-user cache (``$XDG_CACHE_HOME/svae`` or ``~/.cache/svae``).
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "SVAE_DATA_DIR"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "svae"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: ``data_dir`` if given, else ``$SVAE_DATA_DIR``, else the per-user cache."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return default_cache_dir()
