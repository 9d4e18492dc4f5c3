"""The Planetoid citation graphs (Cora, CiteSeer, PubMed) through torch_geometric, from verified raw files.

The raw files ``ind.<name>.{x,y,tx,ty,allx,ally,graph,test.index}`` come from the cache, else the
data mirror (``<data_dir>/planetoid/<Name>/raw``, read-only: copied, never written), else
Planetoid's own download address; each is checked against its SHA-256 before
``torch_geometric.datasets.Planetoid`` processes them into the cache.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from svae.data.store import default_cache_dir, fetch, resolve_data_dir

NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
_SUFFIXES = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")

SHA256 = {
    "CiteSeer/raw/ind.citeseer.allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
    "CiteSeer/raw/ind.citeseer.ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
    "CiteSeer/raw/ind.citeseer.graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
    "CiteSeer/raw/ind.citeseer.test.index": "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
    "CiteSeer/raw/ind.citeseer.tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
    "CiteSeer/raw/ind.citeseer.ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
    "CiteSeer/raw/ind.citeseer.x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
    "CiteSeer/raw/ind.citeseer.y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
    "Cora/raw/ind.cora.allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
    "Cora/raw/ind.cora.ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
    "Cora/raw/ind.cora.graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
    "Cora/raw/ind.cora.test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
    "Cora/raw/ind.cora.tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
    "Cora/raw/ind.cora.ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
    "Cora/raw/ind.cora.x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
    "Cora/raw/ind.cora.y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
    "PubMed/raw/ind.pubmed.allx": "508e538e2abdccdd54c4d3e9f49d638b4af7107d85845f66ddea5a5152658b7e",
    "PubMed/raw/ind.pubmed.ally": "0c37bbe3b5014ec365e9d393cf4791925e5ed94fb194305d74f064a8d7b50f0e",
    "PubMed/raw/ind.pubmed.graph": "5b89f0036ca22909471f1e6558eb42fa06e0c730a577bde5b058b40638f81dc9",
    "PubMed/raw/ind.pubmed.test.index": "b101d421688bbaecbd82e8a18f1e282378d6830f3a37666f28ebc47f844341b5",
    "PubMed/raw/ind.pubmed.tx": "4eb5f5d0f30f26497eb0ac6ac9719d09c67e284f1ed0385c93f3ef27a671da3d",
    "PubMed/raw/ind.pubmed.ty": "ee2e0d4819d9fbcc403689c3bf2e49face401b605932f093bc58ab6461130fdd",
    "PubMed/raw/ind.pubmed.x": "fbe9cb5c47200d1b7769a26e579be3b7130b556831f9d850e77c4c74f2599b33",
    "PubMed/raw/ind.pubmed.y": "e6c807633307a07ed659249006536a147c7999c797f11a2560752990181b41b3",
}


def dataset_name(name: str) -> str:
    """Planetoid's spelling of a data set name, or a ValueError listing the choices."""
    try:
        return NAMES[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"dataset must be one of {sorted(NAMES)}, got {name!r}") from None


def _download(relative: str):
    def download(path: Path) -> None:
        from torch_geometric.data import download_url
        from torch_geometric.datasets import Planetoid

        filename = relative.rsplit("/", 1)[-1]
        # into a folder of its own: download_url skips a file that already exists, as ``path`` does
        with tempfile.TemporaryDirectory(dir=path.parent) as folder:
            os.replace(download_url(f"{Planetoid.url}/{filename}", folder, log=False), path)

    return download


def load_planetoid(name: str, *, data_dir: str | os.PathLike | None = None,
                   cache_dir: str | os.PathLike | None = None):
    """The whole graph of ``name`` (cora, citeseer or pubmed) as a ``torch_geometric.data.Data``.

    Raw node features (binary bag of words, not normalised) and undirected edges, as in Kipf &
    Welling's graph auto-encoder experiments.
    """
    from torch_geometric.datasets import Planetoid

    planetoid_name = dataset_name(name)
    mirror = resolve_data_dir(data_dir) / "planetoid"
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    root = root / "planetoid"
    for suffix in _SUFFIXES:
        relative = f"{planetoid_name}/raw/ind.{planetoid_name.lower()}.{suffix}"
        fetch(relative, SHA256[relative], data_dir=mirror, cache_dir=root, download=_download(relative))
    return Planetoid(str(root), planetoid_name)[0]
