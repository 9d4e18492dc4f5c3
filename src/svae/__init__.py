"""svae: hyperspherical latent-variable models in PyTorch."""
from svae.distributions import HypersphericalUniform, PowerSpherical, VonMisesFisher

__all__ = ["VonMisesFisher", "HypersphericalUniform", "PowerSpherical"]
__version__ = "0.1.0"
