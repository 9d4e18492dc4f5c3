"""Files that are never half written: write a temporary file in the same folder, then rename it."""
from __future__ import annotations

import glob
import os
import secrets
from pathlib import Path
from typing import Callable


def ensure_writable_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if missing and raise OSError unless a file can be created in it: tested by
    creating (and removing) one, which also catches read-only file systems, where permission bits
    do not tell (and root ignores them)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".svae-write-test-{os.getpid()}"
    probe.open("x").close()
    probe.unlink()
    return folder


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path next to ``path``, then move it into place.

    If ``write`` raises (or the process is interrupted), ``path`` keeps its old content and the
    temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path)
    # Created like any file (mode 0o666 less the umask), not mkstemp's owner-only 0o600, which
    # os.replace would hand on to the result. The name holds the writer's process id.
    tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(8)}.tmp"
    tmp.open("x").close()
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _remove_orphans(path: Path) -> None:
    """Remove the temporary files of ``path`` left by writers that were killed (SIGKILL, a power cut)
    before they could clean up: those whose process no longer runs on this machine."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*-*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            tmp.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))
