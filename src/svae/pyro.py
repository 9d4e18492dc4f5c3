r"""svae's distributions for Pyro (``pip install 'svae[pyro]'``).

Pyro samples only from distributions that carry its ``TorchDistributionMixin`` (``pyro.sample``
calls the distribution, and plates, ``to_event`` and masks go through the mixin). Each class here
is the svae distribution of the same name with that mixin added, so it is still an instance of the
svae class: ``kl_divergence`` and every method work unchanged, e.g. inside ``TraceMeanField_ELBO``.

The von Mises–Fisher's sampler is a rejection sampler, reparameterised in the accepted proposal
(Naesseth et al. 2017): its pathwise gradient alone is biased. :class:`VonMisesFisher` tells Pyro
so through ``score_parts``: the score-function part is the log acceptance weight
:meth:`svae.VonMisesFisher.rejection_log_weight`, which Pyro's ELBOs multiply by the downstream
cost, adding the correction term :math:`g_{cor}`, so ``Trace_ELBO`` and ``TraceGraph_ELBO`` give
unbiased gradients. Being only partly reparameterised, it is refused as a guide by
``TraceMeanField_ELBO`` (Pyro requires fully reparameterised guides there); the Power Spherical
and the Spherical Cauchy are fully reparameterised and have a closed-form KL to the uniform.

Example::

    import pyro, torch
    from svae.pyro import HypersphericalUniform, VonMisesFisher

    def model(x):
        mu = pyro.sample("mu", HypersphericalUniform(3))
        with pyro.plate("data", len(x)):
            pyro.sample("x", VonMisesFisher(mu, torch.tensor(10.0)), obs=x)
"""
from __future__ import annotations

try:
    from pyro.distributions.score_parts import ScoreParts
    from pyro.distributions.torch_distribution import TorchDistributionMixin
except ImportError as error:  # an optional extra: say how to get it
    raise ImportError("svae.pyro needs Pyro: pip install 'svae[pyro]' (or pip install pyro-ppl)") from error

from svae import distributions

__all__ = ["VonMisesFisher", "PowerSpherical", "SphericalCauchy", "HypersphericalUniform"]


class VonMisesFisher(distributions.VonMisesFisher, TorchDistributionMixin):
    __doc__ = distributions.VonMisesFisher.__doc__

    def score_parts(self, value):
        """Pathwise through ``log_prob`` (the entropy term), plus the rejection sampler's log
        acceptance weight as the score-function term, so that Pyro adds the correction g_cor.
        ``value`` must be a sample this distribution drew (the weight is read off the sample)."""
        log_prob = self.log_prob(value)
        return ScoreParts(log_prob=log_prob, score_function=self.rejection_log_weight(value.detach()),
                          entropy_term=log_prob)


class PowerSpherical(distributions.PowerSpherical, TorchDistributionMixin):
    __doc__ = distributions.PowerSpherical.__doc__


class SphericalCauchy(distributions.SphericalCauchy, TorchDistributionMixin):
    __doc__ = distributions.SphericalCauchy.__doc__


class HypersphericalUniform(distributions.HypersphericalUniform, TorchDistributionMixin):
    __doc__ = distributions.HypersphericalUniform.__doc__
