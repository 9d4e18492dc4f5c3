"""Planetoid loading from the mirror, checksums, download fallback, and Kipf's edge split."""
import os
import shutil
from pathlib import Path

import pytest
import torch

from svae.data import planetoid
from svae.data.link_split import kipf_split, undirected_pairs
from svae.data.planetoid import load_planetoid
from svae.data.store import ChecksumError

EXPECTED = {"cora": (2708, 1433, 10556), "citeseer": (3327, 3703, 9104), "pubmed": (19717, 500, 88648)}


def snapshot(root: Path):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*"))


@pytest.mark.parametrize("name", ["cora", "citeseer", "pubmed"])
def test_loads_from_the_mirror_without_touching_it(name, mirror, cache):
    before = snapshot(mirror / "planetoid")
    graph = load_planetoid(name, data_dir=mirror, cache_dir=cache)
    assert (graph.num_nodes, graph.num_features, graph.edge_index.shape[1]) == EXPECTED[name]
    assert snapshot(mirror / "planetoid") == before
    assert (cache / "planetoid" / planetoid.dataset_name(name) / "processed").is_dir()


def test_corrupt_or_truncated_file_is_named(mirror, tmp_path):
    fake = tmp_path / "mirror" / "planetoid"
    shutil.copytree(mirror / "planetoid" / "Cora", fake / "Cora")
    target = fake / "Cora" / "raw" / "ind.cora.graph"
    os.chmod(target, 0o644)
    target.write_bytes(target.read_bytes()[:1000])  # truncated
    with pytest.raises(ChecksumError, match=r"ind\.cora\.graph: SHA-256"):
        load_planetoid("cora", data_dir=tmp_path / "mirror", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "planetoid" / "Cora" / "raw" / "ind.cora.graph").exists()


def fake_download_url(mirror, calls, corrupt=None):
    """Planetoid's download address, simulated with local copies (``corrupt``: a file served wrong)."""

    def download_url(url, folder, log=True, filename=None):
        calls.append(url)
        name = url.rsplit("/", 1)[-1]
        path = Path(folder) / (filename or name)
        if path.exists():  # as torch_geometric's: an existing file is returned, not downloaded again
            return str(path)
        shutil.copyfile(mirror / "planetoid" / "Cora" / "raw" / name, path)
        if name == corrupt:
            path.write_bytes(b"not the file")
        return str(path)

    return download_url


def test_download_fallback_loads_the_graph(mirror, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("torch_geometric.data.download_url", fake_download_url(mirror, calls))
    graph = load_planetoid("cora", data_dir=tmp_path / "empty", cache_dir=tmp_path / "cache")
    assert graph.num_nodes == 2708 and len(calls) == 8
    assert all(url.startswith("https://github.com/kimiyoung/planetoid/raw/master/data/") for url in calls)
    assert not list((tmp_path / "cache").rglob(".*.tmp")) and not list((tmp_path / "cache").rglob("tmp*"))


def test_download_fallback_is_verified(mirror, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("torch_geometric.data.download_url", fake_download_url(mirror, calls, corrupt="ind.cora.y"))
    with pytest.raises(ChecksumError, match=r"ind\.cora\.y"):
        load_planetoid("cora", data_dir=tmp_path / "empty", cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob(".*.tmp"))  # no partial file left


def test_unknown_dataset_is_a_clear_error(cache):
    with pytest.raises(ValueError, match=r"dataset must be one of \['citeseer', 'cora', 'pubmed'\], got 'corra'"):
        load_planetoid("corra", cache_dir=cache)


# --- the split -------------------------------------------------------------------------------------


def keys(pairs, n):
    return set((pairs[0] * n + pairs[1]).tolist())


@pytest.mark.parametrize("name", ["cora", "citeseer"])
def test_kipf_split_properties(name, mirror, cache):
    graph = load_planetoid(name, data_dir=mirror, cache_dir=cache)
    n = graph.num_nodes
    split = kipf_split(graph.edge_index, n, seed=3)
    edges = undirected_pairs(graph.edge_index, n)
    e = edges.shape[1]
    assert split.test_pos.shape[1] == e // 10 and split.val_pos.shape[1] == e // 20
    assert split.train_pos.shape[1] == e - e // 10 - e // 20
    assert split.val_neg.shape == split.val_pos.shape and split.test_neg.shape == split.test_pos.shape
    train, val, test = keys(split.train_pos, n), keys(split.val_pos, n), keys(split.test_pos, n)
    val_neg, test_neg = keys(split.val_neg, n), keys(split.test_neg, n)
    assert train | val | test == keys(edges, n) and not (train & val or train & test or val & test)
    assert len(val_neg) == split.val_neg.shape[1] and len(test_neg) == split.test_neg.shape[1]  # distinct
    assert not (val_neg & test_neg) and not ((val_neg | test_neg) & keys(edges, n))
    for part in (split.train_pos, split.val_pos, split.val_neg, split.test_pos, split.test_neg):
        assert (part[0] < part[1]).all()  # i < j: no self-loops, each pair once
    # No leakage: the message-passing graph holds exactly the training edges, in both directions.
    mp = split.train_edge_index
    assert keys(torch.stack([mp.min(0).values, mp.max(0).values]), n) == train and mp.shape[1] == 2 * len(train)


def test_kipf_split_is_seeded(mirror, cache):
    graph = load_planetoid("cora", data_dir=mirror, cache_dir=cache)
    a, b, c = (kipf_split(graph.edge_index, graph.num_nodes, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.test_neg, b.test_neg) and torch.equal(a.train_pos, b.train_pos)
    assert not torch.equal(a.test_pos, c.test_pos)


def test_split_rejects_bad_ratios():
    with pytest.raises(ValueError, match="val_ratio and test_ratio"):
        kipf_split(torch.tensor([[0, 1], [1, 2]]), 3, val_ratio=0.5, test_ratio=0.6)
