"""svae: hyperspherical latent-variable models in PyTorch."""
from svae.distributions import HypersphericalUniform, PowerSpherical, SphericalCauchy, VonMisesFisher

__all__ = ["VonMisesFisher", "HypersphericalUniform", "PowerSpherical", "SphericalCauchy"]
__version__ = "0.1.0"
