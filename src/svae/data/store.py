"""Where data lives: a read-only mirror, a writable cache, and verified downloads.

Two places:

* the **data directory** (a mirror of the public files, possibly read-only) comes from an
  explicit argument (``--data-dir``), else ``$SVAE_DATA_DIR``, else the cache below;
* the **cache** (always writable: copies, downloads, processed files) is ``$SVAE_CACHE_DIR``,
  else ``$XDG_CACHE_HOME/svae``, else ``~/.cache/svae``.

:func:`fetch` puts a verified copy of a file into the cache: from the cache itself, else from the
mirror (never written to), else from a download. Every file is checked against its SHA-256; a
mismatch is an error naming the file, never a silent retry.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from pathlib import Path
from typing import Callable

from svae.atomic import atomic_write, ensure_writable_folder

DATA_DIR_ENV = "SVAE_DATA_DIR"
CACHE_DIR_ENV = "SVAE_CACHE_DIR"


class DataError(RuntimeError):
    """A data file that cannot be had: the message names the file, where it was looked for, and what to do."""


class ChecksumError(DataError):
    """A data file does not have the content it should: truncated, corrupt or another version."""


class DataUnavailableError(DataError):
    """A data file is in neither the data directory nor the cache, and could not be downloaded."""


class CacheNotWritableError(DataError):
    """The cache, where svae keeps its copies and downloads, cannot be written."""


# What to do about a bad file depends on where it is: svae never writes into the data directory
# (often a shared, read-only mirror), but the cache is its own.
_IN_CACHE = "delete it to fetch it again"
_IN_MIRROR = ("svae never writes to the data directory: replace the file with a good copy, or point --data-dir "
              "(or $SVAE_DATA_DIR) elsewhere so that it is downloaded into the cache")


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "svae"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: ``data_dir`` if given, else ``$SVAE_DATA_DIR``, else the cache."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    return default_cache_dir()


def sha256(path: Path, *, gunzip: bool = False, advice: str = _IN_CACHE) -> str:
    """SHA-256 of a file's content (of the decompressed content with ``gunzip``)."""
    digest = hashlib.sha256()
    opener = gzip.open if gunzip else open
    try:
        with opener(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except (OSError, EOFError) as error:  # truncated or not gzip at all
        raise ChecksumError(f"{path}: cannot be read ({error}); {advice}") from None
    return digest.hexdigest()


def _stamp(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def _fingerprint(path: Path, expected: str) -> str:
    stat = path.stat()
    return f"{expected} {stat.st_size} {stat.st_mtime_ns}\n"


def verify(path: Path, expected: str, *, gunzip: bool = False, stamp: bool = False, advice: str = _IN_CACHE) -> Path:
    """Check ``path`` against its SHA-256. With ``stamp`` (files in the writable cache), a verified file
    gets a stamp of its size and modification time, and is not hashed again while they are unchanged.
    ``advice`` ends the error message: what to do about a bad file where it lies."""
    if stamp and _stamp(path).exists() and _stamp(path).read_text() == _fingerprint(path, expected):
        return path
    actual = sha256(path, gunzip=gunzip, advice=advice)
    if actual != expected:
        what = "decompressed content" if gunzip else "content"
        raise ChecksumError(
            f"{path}: SHA-256 of its {what} is {actual}, expected {expected} (truncated, corrupt or a "
            f"different version); {advice}"
        )
    if stamp:
        try:
            _stamp(path).write_text(_fingerprint(path, expected))
        except OSError:  # a read-only cache that holds every file already: hashed again next time
            pass
    return path


def _check_writable(cache_dir: Path, folder: Path) -> None:
    """CacheNotWritableError unless a file can be created in ``folder`` (made if missing), inside the cache."""
    try:
        ensure_writable_folder(folder)
    except OSError as error:
        raise CacheNotWritableError(
            f"the cache {cache_dir} cannot be written ({error.strerror or error}): give a writable folder with "
            f"--cache-dir or $SVAE_CACHE_DIR") from None


def fetch(
    relative: str,
    expected_sha256: str,
    *,
    data_dir: Path,
    cache_dir: Path,
    download: Callable[[Path], None] | None = None,
    gunzip_checksum: bool = False,
) -> Path:
    """A verified copy of ``relative`` in ``cache_dir``.

    Looked for in the cache, then in the mirror ``data_dir`` (copied, never written to), then
    obtained by ``download(path)``, which must write the file to ``path``.
    """
    target = cache_dir / relative
    if target.exists():
        return verify(target, expected_sha256, gunzip=gunzip_checksum, stamp=True)
    source = data_dir / relative
    if source.exists() and source.resolve() != target.resolve():
        verify(source, expected_sha256, gunzip=gunzip_checksum, advice=_IN_MIRROR)
        _check_writable(cache_dir, target.parent)
        return atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))
    missing = f"{relative} is in neither the data directory {data_dir} nor the cache {cache_dir}"
    if download is None:
        raise DataUnavailableError(f"{missing}; put it in one of them")
    _check_writable(cache_dir, target.parent)

    def download_verified(tmp: Path) -> None:
        download(tmp)
        verify(tmp, expected_sha256, gunzip=gunzip_checksum)

    try:
        return atomic_write(target, download_verified)
    except ChecksumError:
        raise
    except OSError as error:  # no network, a refused connection, a full disk
        raise DataUnavailableError(
            f"{missing}, and the download failed ({error}); put the file in one of them (--data-dir or "
            f"$SVAE_DATA_DIR names the data directory) or run again with a network") from None
