"""svae.special against 50-digit mpmath values (tests/data/bessel_reference.json) and closed forms."""
import json
import math
import subprocess
import sys
from pathlib import Path

import mpmath as mp
import pytest
import torch

from svae.special import iv_ratio, iv_ratio_and_complement, log_ive, log_ive_over_power

REFERENCE = json.loads((Path(__file__).parent / "data" / "bessel_reference.json").read_text())["rows"]
# The accuracy targets: relative error 1e-12 in float64 and 1e-5 in float32.
RTOL = {torch.float64: 1e-12, torch.float32: 1e-5}
DTYPES = [torch.float64, torch.float32]


def _table(key, min_order=0.0):
    rows = [r for r in REFERENCE if r["v"] >= min_order]
    v = torch.tensor([r["v"] for r in rows], dtype=torch.float64)
    x = torch.tensor([r["x"] for r in rows], dtype=torch.float64)
    ref = torch.tensor([float(r[key]) for r in rows], dtype=torch.float64)
    return v, x, ref


def _report(err, v, x, tol):
    worst = int(err.argmax())
    return f"max error {float(err[worst]):.3g} > {tol} at v={float(v[worst])}, x={float(x[worst])}"


def test_reference_table_covers_the_required_range():  # CPU only: checks the data, computes nothing
    v, x, _ = _table("log_ive")
    assert float(v.min()) == 0 and float(v.max()) == 5000
    assert float(x.min()) <= 1.0001e-6 and float(x.max()) >= 0.9999e6
    assert len(REFERENCE) > 4000


# With `backend` and `device`: off the CPU both backends run the torch code (the loops take CPU tensors).
@pytest.mark.parametrize("dtype", DTYPES)
def test_log_ive_matches_mpmath(dtype, backend, device):
    v, x, ref = _table("log_ive")
    got = log_ive(v.to(device, dtype), x.to(device, dtype)).double().cpu()
    assert torch.isfinite(got).all()
    # Relative error of log_ive, or of ive itself where |log_ive| < 1 (the stricter of the two
    # would demand more than the precision holds where log_ive crosses its values near 0).
    err = (got - ref).abs() / ref.abs().clamp_min(1)
    assert err.max() <= RTOL[dtype], _report(err, v, x, RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_iv_ratio_matches_mpmath(dtype, backend, device):
    v, x, ref = _table("iv_ratio")
    got = iv_ratio(v.to(device, dtype), x.to(device, dtype)).double().cpu()
    err = ((got - ref) / ref).abs()
    assert err.max() <= RTOL[dtype], _report(err, v, x, RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_iv_ratio_complement_matches_mpmath(dtype, backend, device):
    v, x, ref = _table("iv_ratio_complement", min_order=1)
    ratio, complement = iv_ratio_and_complement(v.to(device, dtype), x.to(device, dtype))
    err = ((complement.double().cpu() - ref) / ref).abs()
    assert err.max() <= RTOL[dtype], _report(err, v, x, RTOL[dtype])
    assert torch.equal(ratio, iv_ratio(v.to(device, dtype), x.to(device, dtype)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_ive_over_power_is_log_ive_minus_v_log_x(dtype, device):
    v, x, ref = _table("log_ive")
    keep = (x > 1e-3) & (x < 1e3)  # where v log x is small enough not to dominate the rounding
    v, x, ref = v[keep], x[keep], ref[keep]
    got = log_ive_over_power(v.to(device, dtype), x.to(device, dtype)).double().cpu()
    expected = ref - v * torch.log(x)
    err = (got - expected).abs() / expected.abs().clamp_min(1)
    assert err.max() <= 10 * RTOL[dtype], _report(err, v, x, 10 * RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_limits_at_zero(dtype, backend, device):
    v = torch.tensor([0.0, 0.5, 1.0, 4.5, 100.0, 5000.0], dtype=dtype, device=device)
    x = torch.zeros_like(v)
    lf = log_ive(v, x)
    assert lf[0] == 0 and torch.all(lf[1:] == -math.inf)
    expected = torch.tensor([-float(k) * math.log(2) - math.lgamma(float(k) + 1) for k in v], dtype=torch.float64)
    assert torch.allclose(log_ive_over_power(v, x).double().cpu(), expected, rtol=RTOL[dtype], atol=0)
    r = iv_ratio(v, x)
    assert r[0] == math.inf and torch.all(r[1:] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_half_integer_closed_forms(dtype, backend, device):
    # I_{1/2}(x) = sqrt(2/(pi x)) sinh x, I_{1/2}/I_{-1/2} = tanh x, I_{3/2}/I_{1/2} = coth x - 1/x:
    # an independent check on a dense grid that crosses both regime boundaries (the closed forms
    # are evaluated with mpmath because coth x - 1/x cancels in floating point for small x).
    x = torch.logspace(-3, 2, 400, dtype=torch.float64).to(dtype).double()
    mp.mp.dps = 40
    xs = [mp.mpf(float(t)) for t in x]
    log_ive_half = torch.tensor([float(mp.log(mp.sqrt(2 / (mp.pi * t)) * mp.sinh(t)) - t) for t in xs], dtype=torch.float64)
    tanh = torch.tensor([float(mp.tanh(t)) for t in xs], dtype=torch.float64)
    coth_minus = torch.tensor([float(mp.coth(t) - 1 / t) for t in xs], dtype=torch.float64)
    rtol = RTOL[dtype]
    assert torch.allclose(log_ive(0.5, x.to(device, dtype)).double().cpu(), log_ive_half, rtol=rtol, atol=rtol)
    assert torch.allclose(iv_ratio(0.5, x.to(device, dtype)).double().cpu(), tanh, rtol=rtol, atol=0)
    assert torch.allclose(iv_ratio(1.5, x.to(device, dtype)).double().cpu(), coth_minus, rtol=rtol, atol=0)


def test_batched_broadcasting_and_dtypes(device):
    v = torch.tensor([[0.0], [1.5], [40.0]], device=device)
    x = torch.tensor([0.1, 5.0, 50.0, 500.0], device=device)
    assert log_ive(v, x).shape == (3, 4)
    assert iv_ratio(v, x).shape == (3, 4)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        assert log_ive(2.0, x.to(dtype)).dtype == dtype
        assert iv_ratio(2.0, x.to(dtype)).dtype == dtype
    expected = torch.stack([log_ive(float(o), x) for o in v.flatten()])
    assert torch.allclose(log_ive(v, x), expected)


def _grad_points(device):
    v = torch.tensor([0.0, 0.5, 1.0, 2.5, 4.5, 11.0, 29.5, 60.0, 499.5], dtype=torch.float64, device=device)
    x = torch.tensor([1e-3, 0.3, 2.0, 11.0, 13.0, 29.0, 31.0, 80.0, 3e3], dtype=torch.float64, device=device)
    return torch.meshgrid(v, x, indexing="ij")


@pytest.mark.parametrize("fn", [log_ive, log_ive_over_power, iv_ratio])
def test_gradcheck_float64(fn, device):
    v, x = _grad_points(device)
    x = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: fn(v, t), (x,), eps=1e-6, atol=1e-7, rtol=1e-5)
    assert torch.autograd.gradgradcheck(lambda t: fn(v, t), (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradcheck_ratio_and_complement(device):
    v, x = _grad_points(device)
    v = v + 1
    x = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: iv_ratio_and_complement(v, t), (x,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradients_at_zero(device):
    x = torch.zeros(3, dtype=torch.float64, device=device, requires_grad=True)
    v = torch.tensor([0.0, 1.5, 10.0], dtype=torch.float64, device=device)
    (g,) = torch.autograd.grad(log_ive_over_power(v, x).sum(), x)
    assert torch.equal(g, torch.full_like(g, -1.0))  # R_{v+1}(0) - 1
    (g,) = torch.autograd.grad(iv_ratio(v[1:], x[1:]).sum(), x)
    assert torch.allclose(g[1:], 1 / (2 * v[1:]))  # R_v(x) ~ x / (2v)


def test_scipy_is_not_needed_at_run_time():  # CPU only: an import check in a subprocess, no tensors
    code = "import sys, svae, svae.special; assert not any(m.startswith('scipy') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_float32_computation_for_devices_without_float64(device):
    # Apple MPS has no float64: there the core runs in float32 with its own constants. Tested
    # here on every device by forcing that path; tolerances are the float32 target
    # (1e-5) and 2e-5 for 1 - R, whose power series cancels near x = r0 (measured 8.5e-6).
    from svae.special import _apply

    v, x, ref = _table("log_ive")
    got = _apply(v.to(device, torch.float32), x.to(device, torch.float32), torch.float32)[0].double().cpu()
    assert ((got - ref).abs() / ref.abs().clamp_min(1)).max() <= 1e-5
    v, x, ref_ratio = _table("iv_ratio", min_order=1)
    _, _, ref_complement = _table("iv_ratio_complement", min_order=1)
    _, _, ratio, complement = _apply((v - 1).to(device, torch.float32), x.to(device, torch.float32), torch.float32)
    assert ((ratio.double().cpu() - ref_ratio) / ref_ratio).abs().max() <= 1e-5
    assert ((complement.double().cpu() - ref_complement) / ref_complement).abs().max() <= 2e-5
