"""`svae reproduce highdim`: the grid it trains, the names of its runs, and its table."""
import json

import torch

from conftest import run_svae
from svae.experiments.highdim import grid, latent_space, reproduce, sphere_counts


def test_every_spherical_family_runs_on_one_sphere_and_on_spheres_of_k_degrees():
    assert sphere_counts("normal", 40) == [1]
    assert sphere_counts("cauchy", 40) == [1, 8, 4]  # one sphere, spheres of 5 and of 10 degrees
    assert sphere_counts("vmf", 64, (5,)) == [1, 12]
    assert sphere_counts("vmf", 10) == [1, 2]  # 10 // 10 = 1 sphere is the single sphere, trained once
    assert sphere_counts("vmf", 4, (5,)) == [1]  # fewer degrees than one sphere of 5: one sphere only
    configs = grid("fast", 2, dims=(20, 40))
    assert len(configs) == 2 * 2 * (1 + 3 * 3)
    assert {(c.latent, c.dim, c.spheres) for c in configs} >= {("normal", 40, 1), ("vmf", 40, 8), ("vmf", 40, 4),
                                                                ("power", 20, 4), ("cauchy", 20, 2), ("cauchy", 20, 1)}
    assert all(c.epochs == 60 and c.warmup_epochs == 10 for c in configs)  # the fast profile's budget


def test_latent_spaces_are_named_with_their_split():
    assert latent_space("normal", 40, 1) == "R^40"
    assert latent_space("vmf", 40, 1) == "S^40"
    assert latent_space("vmf", 40, 8) == "(S^5)^8"
    assert latent_space("power", 64, 12) == "(S^6)^4 × (S^5)^8"


def test_the_grid_trains_writes_its_table_and_rewrites_it_from_the_records(mirror, cache, tmp_path):
    out, table = tmp_path / "records", tmp_path / "highdim.md"
    options = dict(profile="smoke", seeds=1, dims=(10,), latents=("normal", "cauchy"), out_dir=out, table=table,
                   data_dir=mirror, cache_dir=cache, progress=False)
    validating = torch.distributions.Distribution._validate_args
    text = reproduce(**options)
    # the runs train without argument checks, in this process (one job): the caller's default is restored
    assert torch.distributions.Distribution._validate_args == validating
    assert sorted(p.name for p in out.glob("*.json")) == ["cauchy_d10_seed0.json", "cauchy_d10_spheres2_seed0.json",
                                                           "normal_d10_seed0.json"]
    record = json.loads((out / "cauchy_d10_spheres2_seed0.json").read_text())
    assert record["command"] == "svae reproduce highdim" and record["config"]["spheres"] == 2
    rows = [line for line in text.splitlines() if line.startswith("| 10 |")]
    assert [row.split(" | ")[1:3] for row in rows] == [["N-VAE", "R^10"], ["SC-VAE", "S^10"], ["SC-VAE", "(S^5)^2"]]
    normal_ll = json.loads((out / "normal_d10_seed0.json").read_text())["metrics"]["test_ll"]
    gap = record["metrics"]["test_ll"] - normal_ll
    assert rows[2].split(" | ")[5] == f"{gap:.2f}" and rows[0].split(" | ")[5] == "—"
    assert "best hyperspherical model SC-VAE" in text
    assert reproduce(**options, train=False) == text == table.read_text()
    cli = run_svae("reproduce", "highdim", "--profile", "smoke", "--seeds", "1", "--dims", "10", "--latents",
                   "normal", "cauchy", "--out", out, "--table", tmp_path / "again.md", "--table-only")
    assert cli.returncode == 0, cli.stderr
    assert (tmp_path / "again.md").read_text() == text


def test_link_prediction_grid_adds_the_s_vgae_on_spheres_of_k_degrees():
    from svae.experiments.linkpred import record_path, reproduce_configs

    configs = reproduce_configs(2, ("cora", "citeseer"), sphere_dof=(5,))
    products = [c for c in configs if c.spheres > 1]
    assert {(c.dataset, c.latent, c.latent_dim, c.spheres) for c in products} == {("cora", "vmf", 32, 6),
                                                                                  ("citeseer", "vmf", 64, 12)}
    assert len(configs) == len(reproduce_configs(2, ("cora", "citeseer"))) + len(products) == 2 * 2 * 5
    assert record_path("out", products[0]).name == "cora_vmf_spheres6_seed0.json"
