"""The torch.distributions contract: shapes, expand, dtype/device, and errors on bad input."""
import pytest
import torch
from torch.distributions import kl_divergence

from svae import HypersphericalUniform, PowerSpherical, VonMisesFisher
from svae.distributions import sphere

FAMILIES = [VonMisesFisher, PowerSpherical]


def unit(*shape, device, dtype=torch.float64):
    return torch.nn.functional.normalize(torch.randn(*shape, dtype=dtype, device=device), dim=-1)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "loc_shape, kappa_shape, batch_shape",
    [((5,), (), ()), ((4, 5), (4,), (4,)), ((3, 1, 5), (4,), (3, 4)), ((5,), (2, 3), (2, 3))],
)
def test_shapes(family, loc_shape, kappa_shape, batch_shape, device):
    q = family(unit(*loc_shape, device=device), torch.rand(kappa_shape, dtype=torch.float64, device=device) * 10)
    assert q.batch_shape == batch_shape and q.event_shape == (5,)
    for sample_shape in [(), (7,), (2, 3)]:
        z = q.rsample(sample_shape)
        assert z.shape == sample_shape + batch_shape + (5,)
        assert q.log_prob(z).shape == sample_shape + batch_shape
        assert sphere.check(z).all()
    assert q.entropy().shape == batch_shape
    assert q.mean.shape == q.variance.shape == q.mode.shape == batch_shape + (5,)
    assert kl_divergence(q, HypersphericalUniform(5, dtype=torch.float64, device=device)).shape == batch_shape


@pytest.mark.parametrize("family", FAMILIES)
def test_expand(family, device):
    q = family(unit(5, device=device), torch.tensor(3.0, dtype=torch.float64, device=device), validate_args=True)
    e = q.expand((2, 3))
    assert e.batch_shape == (2, 3) and e.event_shape == (5,) and e._validate_args
    assert e.sample((4,)).shape == (4, 2, 3, 5)
    assert torch.allclose(e.entropy(), q.entropy().expand(2, 3))
    z = q.sample((6,))
    assert torch.allclose(e.log_prob(z[:, None, None]), q.log_prob(z)[:, None, None].expand(6, 2, 3))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device_follow_parameters(family, dtype, device):
    q = family(unit(3, 4, dtype=dtype, device=device), 2.0)  # a Python float concentration takes loc's dtype
    assert q.concentration.dtype == dtype
    for value in [q.rsample((2,)), q.log_prob(q.sample()), q.entropy(), q.mean, q.variance]:
        assert value.dtype == dtype and value.device == q.loc.device


@pytest.mark.parametrize("family", FAMILIES)
def test_kappa_zero_is_uniform(family, device):
    m = 6
    q = family(unit(m, device=device), torch.tensor(0.0, dtype=torch.float64, device=device))
    u = HypersphericalUniform(m, dtype=torch.float64, device=device)
    z = u.sample((10,))
    assert torch.allclose(q.log_prob(z), u.log_prob(z), atol=1e-12)
    assert torch.allclose(q.entropy(), u.entropy(), atol=1e-12)
    assert abs(float(kl_divergence(q, u))) < 1e-12
    assert torch.allclose(q.variance, torch.full((m,), 1 / m, dtype=torch.float64, device=device), atol=1e-12)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "loc, kappa, name",
    [
        (torch.tensor([1.0, 1.0, 0.0]), torch.tensor(1.0), "loc"),
        (torch.tensor([1.0, 0.0, 0.0]), torch.tensor(-1.0), "concentration"),
        (torch.tensor([1.0, 0.0, 0.0]), torch.tensor(float("nan")), "concentration"),
        (torch.tensor([float("nan"), 0.0, 0.0]), torch.tensor(1.0), "loc"),
    ],
)
def test_invalid_parameters_raise_naming_the_argument(family, loc, kappa, name):  # CPU only: argument validation
    with pytest.raises(ValueError, match=f"parameter {name}"):
        family(loc, kappa, validate_args=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_structural_errors_raise_without_validation(family):  # CPU only: argument validation
    with pytest.raises(ValueError, match=r"loc must have shape \(\.\.\., m\) with m >= 2"):
        family(torch.ones(4, 1), torch.ones(4))
    with pytest.raises(ValueError, match=r"loc must have shape"):
        family(torch.tensor(1.0), torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"batch shape of loc \(4,\).*concentration \(3,\) do not broadcast"):
        family(unit(4, 3, device="cpu"), torch.ones(3))


@pytest.mark.parametrize("family", FAMILIES)
def test_log_prob_of_a_point_off_the_sphere_raises(family, device):
    q = family(unit(3, device=device), torch.tensor(2.0, dtype=torch.float64, device=device), validate_args=True)
    with pytest.raises(ValueError, match="value argument"):
        q.log_prob(torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64, device=device))
    q.log_prob(q.sample())  # a sample is accepted


def test_kl_between_different_spheres_raises():  # CPU only: argument validation
    with pytest.raises(ValueError, match="different spheres"):
        kl_divergence(VonMisesFisher(unit(3, device="cpu"), 1.0), HypersphericalUniform(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="different spheres"):
        kl_divergence(HypersphericalUniform(3), HypersphericalUniform(4))


def test_kl_between_uniforms_is_zero(device):
    """KL(U || U) = 0, broadcast over both batch shapes (a Pyro model whose guide is its prior asks for it)."""
    p = HypersphericalUniform(5, batch_shape=(2, 1), dtype=torch.float64, device=device)
    kl = kl_divergence(p, HypersphericalUniform(5, batch_shape=(3,), dtype=torch.float64, device=device))
    assert kl.shape == (2, 3) and kl.dtype == torch.float64 and kl.device.type == torch.device(device).type
    assert (kl == 0).all()
    z = p.sample((1000,))
    assert (p.log_prob(z) == HypersphericalUniform(5, dtype=torch.float64).log_prob(z)).all()  # E[log p - log q] = 0


@pytest.mark.parametrize("dim", [0, -2, 2.5, "3", True])
def test_uniform_rejects_a_bad_dim(dim):  # CPU only: argument validation
    with pytest.raises(ValueError, match="dim must be an int"):
        HypersphericalUniform(dim)


def test_uniform_contract(device):
    u = HypersphericalUniform(4, batch_shape=(2,), dtype=torch.float64, device=device, validate_args=True)
    z = u.sample((3,))
    assert z.shape == (3, 2, 4) and z.dtype == torch.float64 and sphere.check(z).all()
    assert u.log_prob(z).shape == (3, 2)
    assert u.expand((5, 2)).sample().shape == (5, 2, 4)
    with pytest.raises(ValueError, match="value argument"):
        u.log_prob(torch.ones(2, 4, dtype=torch.float64, device=device))


def test_sphere_constraint_tolerance_depends_on_dtype(device):
    v = torch.tensor([1.0 + 1e-6, 0.0], device=device)
    assert sphere.check(v.float())  # float32 normalisation is accurate to about 1e-7 per entry
    assert not sphere.check(v.double())
    assert not sphere.check(torch.tensor([float("nan"), 0.0], device=device))
