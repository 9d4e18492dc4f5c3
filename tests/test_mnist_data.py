"""MNIST: the IDX reader, checksums, the fixed split, dynamic binarisation."""
import gzip
import io
import math
import os
import shutil
import struct

import numpy as np
import pytest
import torch

from svae.data.mnist import MIRRORS, binarize, load_mnist, read_idx
from svae.data.store import ChecksumError, DataUnavailableError


def write_idx(path, array: np.ndarray, code: int, compress: bool):
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + b"".join(struct.pack(">I", n) for n in array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_reader_on_tiny_files(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", images, 0x08, compress)
    assert np.array_equal(read_idx(tmp_path / "a"), images)
    values = np.array([1.5, -2.0, 3.25], dtype=np.float32)
    write_idx(tmp_path / "b", values, 0x0D, compress)
    assert np.array_equal(read_idx(tmp_path / "b"), values)


def test_idx_reader_rejects_bad_files(tmp_path):
    write_idx(tmp_path / "a", np.zeros((5, 2), dtype=np.uint8), 0x08, False)
    data = (tmp_path / "a").read_bytes()
    (tmp_path / "truncated").write_bytes(data[:-3])
    with pytest.raises(ValueError, match=r"truncated: .*\(5, 2\)|needs 18 \(truncated\?\)"):
        read_idx(tmp_path / "truncated")
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04hello")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "junk")


def test_loads_the_mirror_with_the_fixed_split(mirror, cache):
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (mirror / "mnist").iterdir())
    data = load_mnist(data_dir=mirror, cache_dir=cache)
    assert data.train_x.shape == (50000, 784) and data.val_x.shape == (10000, 784) and data.test_x.shape == (10000, 784)
    assert data.train_x.dtype == torch.float32 and 0 <= data.train_x.min() and data.train_x.max() == 1
    # class counts of the published test set, and of the last 10 000 training images plus the first 50 000
    assert torch.bincount(data.test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    train_counts = torch.bincount(torch.cat([data.train_y, data.val_y])).tolist()
    assert train_counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (mirror / "mnist").iterdir()) == before
    # in the files' order: training the first 50 000 images, validation the last 10 000
    raw_x = read_idx(next((mirror / "mnist").glob("train-images-idx3-ubyte*"))).reshape(-1, 784)
    raw_y = read_idx(next((mirror / "mnist").glob("train-labels-idx1-ubyte*")))
    assert torch.equal(data.val_y, torch.from_numpy(raw_y[50000:].astype(np.int64)))
    assert torch.equal(data.val_x, torch.from_numpy(raw_x[50000:].astype(np.float32) / 255))
    assert torch.equal(data.train_y, torch.from_numpy(raw_y[:50000].astype(np.int64)))


def test_corrupt_file_is_named(mirror, tmp_path):
    fake = tmp_path / "mirror" / "mnist"
    shutil.copytree(mirror / "mnist", fake)
    target = fake / "t10k-labels-idx1-ubyte.gz"
    os.chmod(target, 0o644)
    raw = bytearray(gzip.decompress(target.read_bytes()))
    raw[100] ^= 1  # one flipped bit: a valid gzip whose content is wrong
    target.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ChecksumError, match=r"t10k-labels-idx1-ubyte\.gz: SHA-256 of its decompressed content"):
        load_mnist(data_dir=tmp_path / "mirror", cache_dir=tmp_path / "cache")
    target.write_bytes(target.read_bytes()[:50])  # truncated gzip
    with pytest.raises(ChecksumError, match=r"t10k-labels-idx1-ubyte\.gz: cannot be read"):
        load_mnist(data_dir=tmp_path / "mirror", cache_dir=tmp_path / "cache2")


def serve_from(mirror, requests, corrupt=None):
    """urlopen for the canonical mirrors, answered from the local files (``corrupt``: a file served wrong)."""
    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def urlopen(url, timeout=None):
        requests.append(url)
        if url.startswith(MIRRORS[0]):
            raise OSError("unreachable")  # the first mirror is down: the second one serves
        name = url.rsplit("/", 1)[1]
        payload = (mirror / "mnist" / name).read_bytes()
        if name == corrupt:
            payload = gzip.compress(gzip.decompress(payload)[:-1])
        return Response(payload)

    return urlopen


def test_download_fallback_is_verified_and_cached(mirror, tmp_path, monkeypatch):
    # an online user without the mirror: the files come from the canonical addresses, are checked
    # and cached, and a second load reads the cache without downloading again
    requests = []
    monkeypatch.setattr("urllib.request.urlopen", serve_from(mirror, requests))
    empty = tmp_path / "no-mirror"
    empty.mkdir()
    data = load_mnist(data_dir=empty, cache_dir=tmp_path / "cache")
    assert torch.equal(data.test_y, load_mnist(data_dir=mirror, cache_dir=tmp_path / "cache-mirror").test_y)
    assert len(requests) == 8  # four files, each tried at the unreachable address first
    load_mnist(data_dir=empty, cache_dir=tmp_path / "cache")
    assert len(requests) == 8


def test_download_failures_are_named(mirror, tmp_path, monkeypatch):
    empty = tmp_path / "no-mirror"
    empty.mkdir()
    monkeypatch.setattr("urllib.request.urlopen", serve_from(mirror, [], corrupt="t10k-labels-idx1-ubyte.gz"))
    with pytest.raises(ChecksumError, match=r"t10k-labels-idx1-ubyte.*: SHA-256"):
        load_mnist(data_dir=empty, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "mnist" / "t10k-labels-idx1-ubyte").exists()  # nothing half written

    def offline(url, timeout=None):
        raise OSError("network is unreachable")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(DataUnavailableError) as error:
        load_mnist(data_dir=empty, cache_dir=tmp_path / "offline")
    assert str(error.value) == (
        f"train-images-idx3-ubyte is in neither the data directory {empty / 'mnist'} nor the cache "
        f"{tmp_path / 'offline' / 'mnist'}, and the download failed ({MIRRORS[0]}: network is unreachable; "
        f"{MIRRORS[1]}: network is unreachable); put the file in one of them (--data-dir or $SVAE_DATA_DIR names "
        f"the data directory) or run again with a network")


def test_binarisation_statistics():
    # each pixel is Bernoulli(grey level): mean within 5 standard errors, fresh draws every call
    torch.manual_seed(0)
    x = torch.tensor([0.0, 0.1, 0.5, 0.93, 1.0]).repeat(20000, 1)
    b = binarize(x)
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    p = x[0]
    se = torch.sqrt(p * (1 - p) / 20000)
    assert ((b.mean(0) - p).abs() <= 5 * se + 1e-12).all()
    assert not torch.equal(binarize(x), b)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(binarize(x[:10], g1), binarize(x[:10], g2))
