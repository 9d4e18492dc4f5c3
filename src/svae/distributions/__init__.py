"""Distributions on the unit sphere, following the torch.distributions contract."""
from svae.distributions import kl as _kl  # noqa: F401  (registers the KL divergences)
from svae.distributions.constraints import sphere
from svae.distributions.fit import fit_von_mises_fisher
from svae.distributions.hyperspherical_uniform import HypersphericalUniform
from svae.distributions.power_spherical import PowerSpherical
from svae.distributions.spherical_cauchy import SphericalCauchy
from svae.distributions.von_mises_fisher import VonMisesFisher

__all__ = ["VonMisesFisher", "HypersphericalUniform", "PowerSpherical", "SphericalCauchy", "sphere", "fit_von_mises_fisher"]
