"""MNIST from its four IDX files, read with numpy (no torchvision).

Files come from the cache, else the data mirror (``<data_dir>/mnist``, gzip, read-only), else the
canonical download mirrors; each is verified against the SHA-256 of its *decompressed* content.
Images are kept as floats in [0, 1]; :func:`binarize` draws the dynamic binarisation x > U(0, 1)
afresh for every batch, at training and at test time. The validation set is the last 10 000
training images (fixed), the training set the first 50 000.
"""
from __future__ import annotations

import gzip
import os
import urllib.request
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from svae.data.store import default_cache_dir, fetch, resolve_data_dir

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# SHA-256 of the decompressed files (the data mirror's README; identical to the original distribution)
SHA256 = {
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
VALIDATION_SIZE = 10_000
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (gzip-compressed or raw) as a numpy array, with its header checked against its size.

    Header: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
    dimension.
    """
    path = Path(path)
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open if gzipped else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable IDX file ({error})") from None
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] not in _DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: {len(data)} bytes, but its header {shape} of {dtype} needs {expected} (truncated?)")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _download(name: str):
    def download(path: Path) -> None:
        errors = []
        for mirror in MIRRORS:
            try:
                with urllib.request.urlopen(f"{mirror}{name}.gz", timeout=60) as response:
                    path.write_bytes(gzip.decompress(response.read()))
                return
            except (OSError, EOFError) as error:
                errors.append(f"{mirror}: {error}")
        raise OSError("; ".join(errors))

    return download


def _fetch(name: str, data_dir: Path, cache_dir: Path) -> Path:
    """The verified file ``name`` (decompressed content checked), gzip from the mirror or raw from a download."""
    for relative in (f"{name}.gz", name):
        if (cache_dir / relative).exists() or (data_dir / relative).exists():
            return fetch(relative, SHA256[name], data_dir=data_dir, cache_dir=cache_dir,
                         gunzip_checksum=relative.endswith(".gz"))
    return fetch(name, SHA256[name], data_dir=data_dir, cache_dir=cache_dir, download=_download(name))


@dataclass(frozen=True)
class MNIST:
    """Grey levels in [0, 1] as float32 tensors of shape (n, 784), labels as int64."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def to(self, device) -> "MNIST":
        """The same splits on ``device`` (as ``Tensor.to``: no copy where they already are)."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def load_mnist(*, data_dir=None, cache_dir=None) -> MNIST:
    """MNIST with the fixed split: train = first 50 000, validation = last 10 000 training images."""
    mirror = resolve_data_dir(data_dir) / "mnist"
    cache = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / "mnist"
    arrays = {key: read_idx(_fetch(name, mirror, cache)) for key, name in FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise ValueError(f"MNIST {split}: images {images.shape} and labels {labels.shape} do not match")
    images = {s: torch.from_numpy(arrays[f"{s}_images"].reshape(-1, 784).astype(np.float32) / 255) for s in ("train", "test")}
    labels = {s: torch.from_numpy(arrays[f"{s}_labels"].astype(np.int64)) for s in ("train", "test")}
    cut = len(images["train"]) - VALIDATION_SIZE
    return MNIST(images["train"][:cut], labels["train"][:cut], images["train"][cut:], labels["train"][cut:],
                 images["test"], labels["test"])


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarisation: each pixel is 1 with probability equal to its grey level (x > U(0, 1))."""
    u = torch.rand(x.shape, generator=generator, device=x.device if generator is None else "cpu")
    return (x > u.to(x.device)).to(x.dtype)
