"""Graph VAEs: the losses against direct formulas, and short runs of the experiment."""
import pytest
import torch
import torch.nn.functional as F

from svae.experiments.linkpred import LinkPredConfig, run
from svae.nn.graph import GCNEncoder, ScaledInnerProductDecoder, VariationalGAE, _sum_log, message_passing_graph
from svae.nn.latent import latent_family


def small_model(latent="vmf", learnable=True):
    family = latent_family(latent, 3)
    return VariationalGAE(GCNEncoder(4, 8, family.num_params), family, ScaledInnerProductDecoder(2.0, learnable))


def random_graph(n=30, e=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    pairs = torch.randint(n, (2, 4 * e), generator=g)
    pairs = pairs[:, pairs[0] < pairs[1]]
    keys = torch.unique(pairs[0] * n + pairs[1])[:e]
    return torch.stack([keys // n, keys % n])


def direct_kipf_loss(model, z, train_pos):
    """Kipf's loss written out on the full N x N matrix."""
    n = z.shape[0]
    labels = torch.eye(n, dtype=z.dtype)
    labels[train_pos[0], train_pos[1]] = labels[train_pos[1], train_pos[0]] = 1
    a = 2 * train_pos.shape[1]
    pos_weight = torch.tensor((n * n - a) / a, dtype=z.dtype)
    norm = n * n / (2 * (n * n - a))
    logits = model.decoder.forward_all(z, sigmoid=False)
    entries = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=pos_weight, reduction="none")
    return norm * entries.mean(), norm * entries / (n * n)


def test_the_sparse_adjacency_propagates_like_the_edge_list():
    edges = random_graph()
    directed = torch.cat([edges[:, :40], edges.flip(0)], dim=1)  # some edges one way only: direction matters
    graph = message_passing_graph(directed, 30)
    assert graph.layout == torch.sparse_csr
    torch.manual_seed(0)
    encoder = GCNEncoder(4, 8, 5)
    twin = GCNEncoder(4, 8, 5)
    twin.load_state_dict(encoder.state_dict())
    x = torch.randn(30, 4)
    out, expected = encoder(x, graph), twin(x, directed)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    out.square().sum().backward()
    expected.square().sum().backward()
    for a, b in zip(encoder.parameters(), twin.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("block_elements", [1 << 24, 64])  # one block, and many blocks of 2 rows
def test_dense_loss_matches_the_direct_formula(block_elements):
    model = small_model()
    train_pos = random_graph()
    z = torch.nn.functional.normalize(torch.randn(30, 4, dtype=torch.float64), dim=-1).requires_grad_()
    model = model.double()
    loss, share = model.dense_recon_loss(z, train_pos, per_node=True, block_elements=block_elements)
    expected, entries = direct_kipf_loss(model, z, train_pos)
    assert torch.allclose(loss, expected, rtol=1e-12)
    grads = torch.autograd.grad(loss, (z, model.decoder.log_scale))
    expected_grads = torch.autograd.grad(expected, (z, model.decoder.log_scale))
    for g, e in zip(grads, expected_grads):
        assert torch.allclose(g, e, rtol=1e-10, atol=1e-14)
    # each node's share: the entries of its row and column, the diagonal once
    expected_share = entries.sum(0) + entries.sum(1) - entries.diagonal()
    assert torch.allclose(share, expected_share.detach(), rtol=1e-10)


def test_negative_sampling_loss_and_shares():
    model = small_model().double()
    z = torch.randn(30, 4, dtype=torch.float64)
    pos, neg = random_graph(seed=1), random_graph(seed=2)
    loss, share = model.recon_loss(z, pos, neg, per_node=True)
    s_pos, s_neg = model.decoder.logits(z, pos), model.decoder.logits(z, neg)
    expected = -F.logsigmoid(s_pos).mean() - F.logsigmoid(-s_neg).mean()
    assert torch.allclose(loss, expected, rtol=1e-12)
    expected_share = torch.zeros(30, dtype=torch.float64)
    for edges, losses in ((pos, -F.logsigmoid(s_pos) / pos.shape[1]), (neg, -F.logsigmoid(-s_neg) / neg.shape[1])):
        for (i, j), value in zip(edges.T.tolist(), losses.tolist()):
            expected_share[i] += value
            if j != i:
                expected_share[j] += value
    assert torch.allclose(share, expected_share, rtol=1e-12)


def test_scores_of_unit_vectors_are_scaled():
    z = torch.nn.functional.normalize(torch.randn(5, 3), dim=-1)
    edges = torch.tensor([[0, 1], [0, 2]])  # first pair (0, 0): z^T z = 1
    plain, scaled = ScaledInnerProductDecoder(1.0), ScaledInnerProductDecoder(10.0)
    assert plain(z, edges)[0] == pytest.approx(torch.sigmoid(torch.tensor(1.0)).item())
    assert scaled(z, edges)[0] > 0.9999


@pytest.mark.parametrize("latent", ["normal", "vmf", "power"])
def test_short_cora_run(latent, mirror, cache):
    config = LinkPredConfig(dataset="cora", latent=latent, epochs=60, seed=1)
    record = run(config, data_dir=mirror, cache_dir=cache, progress=False)
    metrics = record["metrics"]
    assert 0.85 < metrics["test_auc"] <= 1 and 0.85 < metrics["test_ap"] <= 1
    assert len(record["curve"]) == 60 and 1 <= metrics["best_epoch"] <= 60


def test_runs_are_deterministic_for_a_seed(mirror, cache):
    config = LinkPredConfig(dataset="cora", latent="vmf", epochs=5, seed=4, loss="negative", correction=True)
    a = run(config, data_dir=mirror, cache_dir=cache, progress=False)
    b = run(config, data_dir=mirror, cache_dir=cache, progress=False)
    assert a["curve"] == b["curve"] and a["metrics"] == b["metrics"]


def test_correction_changes_gradients_not_values(mirror, cache):
    from svae.experiments.linkpred import build_model, prepare, training_loss

    values, grads = [], []
    for correction in (False, True):
        config = LinkPredConfig(dataset="cora", latent="vmf", correction=correction)
        data = prepare(config, data_dir=mirror, cache_dir=cache)
        torch.manual_seed(0)
        model = build_model(config, data.x.shape[1])
        torch.manual_seed(1)
        loss, parts = training_loss(model, data, config)
        loss.backward()
        values.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert values[0] == pytest.approx(values[1], rel=1e-6)
    assert not torch.allclose(grads[0], grads[1])


@pytest.mark.parametrize(
    "overrides, message",
    [({"dataset": "reddit"}, "dataset must be one of"), ({"latent": "gaussian"}, "latent must be one of"),
     ({"epochs": -5}, "epochs must be an int >= 1"), ({"loss": "bce"}, "loss must be one of"),
     ({"lr": 0}, "lr must be > 0"), ({"dropout": 1.5}, r"dropout must be in \[0, 1\)")],
)
def test_bad_arguments_are_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        LinkPredConfig(**overrides)


@pytest.mark.parametrize("shape", [(5, 200), (130, 7), (64, 128)])  # with and without a remainder of 64
@pytest.mark.parametrize("dim", [0, 1])
def test_sum_log_by_products_matches_float64_logs(shape, dim):
    u = 0.5 + 0.5 * torch.rand(shape, generator=torch.Generator().manual_seed(0))
    u[0] = 0.5  # the smallest factors: products down to 2^-64 must not underflow
    expected = u.double().log().sum(dim)
    # each factor and each product rounds once (relative eps), each log adds one rounding unit
    eps = torch.finfo(torch.float32).eps
    tolerance = 2 * eps * shape[dim] + eps * expected.abs()
    assert (_sum_log(u, dim).double() - expected).abs().le(tolerance).all()


def test_dense_loss_in_float32_at_a_large_scale():
    # A large scale makes most entries either large (s >> 0) or tiny (softplus(s) ~ e^s, s << 0):
    # the float32 value must stay within its stated accuracy, N^2 rounding units of the sum.
    model = small_model()
    model.decoder.log_scale.data.fill_(torch.log(torch.tensor(30.0)))
    z = torch.nn.functional.normalize(torch.randn(40, 4), dim=-1)
    train_pos = random_graph(40, 20)
    loss = model.dense_recon_loss(z, train_pos, block_elements=128)
    expected, _ = direct_kipf_loss(model.double(), z.double(), train_pos)
    n, a = z.shape[0], 2 * train_pos.shape[1]
    norm = n * n / (2 * (n * n - a))  # the loss is norm / N^2 times the sum
    eps = torch.finfo(torch.float32).eps
    error = abs(loss.item() - expected.item())
    assert error <= 4 * eps * (norm + expected.item())
    # dropping every entry with s < 0 would be ~1e-2 off here: the bound is not vacuous
    assert 4 * eps * (norm + expected.item()) < 1e-5


def test_reproduce_grid_resumes_and_tables_partial_grids(mirror, cache, tmp_path):
    from svae.experiments.linkpred import reproduce

    out, table = tmp_path / "records", tmp_path / "linkpred.md"
    text = reproduce(seeds=1, datasets=("cora",), epochs=3, out_dir=out, table=table, data_dir=mirror,
                     cache_dir=cache, progress=False)
    rows = [line for line in text.splitlines() if line.startswith("| cora")]
    assert [row.split(" | ")[1] for row in rows] == ["N-VGAE", "S-VGAE", "PS-VGAE", "S-VGAE + g_cor"]
    assert table.read_text() == text and "Incomplete" not in text
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    reproduce(seeds=1, datasets=("cora",), epochs=3, out_dir=out, table=table, data_dir=mirror, cache_dir=cache,
              progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps  # nothing retrained
    (out / "cora_power_seed0.json").unlink()
    text = reproduce(seeds=1, datasets=("cora",), epochs=3, out_dir=out, table=table, train=False)
    assert "PS-VGAE" not in text and "Incomplete grid: 1 of its 4 runs" in text
    assert not (out / "cora_power_seed0.json").exists()
