r"""Wood's (1994) rejection sampler for the cosine :math:`\omega = \mu^T z` of a vMF (after Ulrich 1984).

The target is :math:`g(\omega) \propto e^{\kappa\omega} (1 - \omega^2)^{(m-3)/2}`. Proposals are
:math:`\omega = h(\varepsilon, b) = (1 - (1+b)\varepsilon)/(1 - (1-b)\varepsilon)` with
:math:`\varepsilon \sim \mathrm{Beta}((m-1)/2, (m-1)/2)`. Everything here is written in terms of
the two complements :math:`P \propto \varepsilon` and :math:`M \propto 1 - \varepsilon`, which are
drawn to full relative precision, so that :math:`1 \mp \omega` never suffer cancellation:

.. math::
    1 - \omega = \frac{2bP}{M + bP}, \qquad 1 + \omega = \frac{2M}{M + bP}.
"""
from __future__ import annotations

import math

import torch

from svae import native
from svae.distributions.householder import rotate_from_pole

# Wood's envelope accepts at least 65.7 % of proposals for every (m, kappa) (0.66 for m = 2 at
# large kappa, 0.70 for m >= 10 at kappa >> m, -> 1 for kappa << m), so a sample is still pending
# after k proposals with probability at most 0.343^k.
#
# The exact loop (eager code on the CPU): a round draws several proposals
# per pending sample; later rounds take 8, leaving at most 0.343^8 = 2e-4 of the pending samples
# each, so _MAX_ROUNDS rounds fail only for non-finite parameters.
_PROPOSAL_BUDGET = 4096
_MAX_PROPOSALS = 8
_MAX_ROUNDS = 20
# The loop without host synchronisation (every other device, torch.compile, torch.func): 4
# proposals per sample, then 40 for each of the first 16 + n/16 samples still pending (on
# average at most 0.343^4 n = 0.014 n of them). A sample is left unaccepted with probability
# below 0.014 * 0.343^40 = 4e-21 (or if more than 16 + n/16 are pending, rarer still), and is
# then NaN, which every training loop of svae stops at: never a biased value.
_FIRST_PROPOSALS = 4
_SECOND_PROPOSALS = 40


def envelope_b(kappa: torch.Tensor, m: int) -> torch.Tensor:
    """Wood's b = (m-1) / (2 kappa + sqrt(4 kappa^2 + (m-1)^2)): the form without cancellation,
    scaled by 1/4 as ((m-1)/4) / (kappa/2 + hypot(kappa/2, (m-1)/4)) so that no intermediate
    exceeds kappa (2 kappa + ... overflows float32 above 8.5e37).

    The textbook (-2 kappa + sqrt(4 kappa^2 + (m-1)^2)) / (m-1) is 0 in float32 for large kappa.
    """
    half, quarter = 0.5 * kappa, kappa.new_full((), 0.25 * (m - 1))
    return quarter / (half + torch.hypot(half, quarter))


def wood_sample(loc: torch.Tensor, kappa: torch.Tensor, p: torch.Tensor, q: torch.Tensor,
                v: torch.Tensor) -> torch.Tensor:
    """The sample with tangent direction ``v`` whose cosine ``w = h(eps, b)`` is the accepted
    proposal (P, M) (:func:`accepted_complements`) under the envelope of ``kappa``, differentiable
    in ``loc`` and ``kappa`` with the proposal held fixed: the pathwise gradient flows through b.
    """
    if native.usable(loc, kappa, p, q, v):
        (loc_rows, v_rows), (kappa, p, q) = native.rows(v.shape, (loc, v), (kappa, p, q))
        return _compiled_sample(loc_rows, kappa, p, q, v_rows)
    return _wood_sample(loc, kappa, p, q, v)


def _wood_sample(loc, kappa, p, q, v):
    b = envelope_b(kappa, loc.shape[-1])
    denom = q + b * p
    return rotate_from_pole(loc, 2 * b * p / denom, 2 * q / denom, v)


_compiled_sample = native.compiled("wood_sample", _wood_sample)


def _proposal_draws(kappa: torch.Tensor, m: int, count: int):
    """The random numbers of ``count`` proposals per entry of ``kappa``: Gamma((m-1)/2) (half a
    chi-square with m - 1 degrees of freedom), standard normal and standard exponential."""
    shape = kappa.shape + (count,)
    gamma = torch._standard_gamma(kappa.new_full(shape, 0.5 * (m - 1)))
    normal = torch.randn(shape, dtype=kappa.dtype, device=kappa.device)
    return gamma, normal, torch.empty_like(normal).exponential_()


def _first_accepted(kappa: torch.Tensor, m: int, count: int):
    """(P, M, accepted) of the first accepted of ``count`` proposals per entry of ``kappa``.

    eps ~ Beta(a, a), a = (m-1)/2, from one chi-square V ~ chi2(m-1) and one normal N (the
    Student-t representation of a symmetric Beta): with S = sqrt(N^2 + V), 2 eps - 1 = N/S, so
    P = S + N = 2 S eps and M = S - N = 2 S (1 - eps), the smaller of the two taken as V / (larger).
    Wood's test (m-1) log t - t + d >= log u becomes (m-1) (log1p(y) - y) >= log u with
    y = (1-b)(2 eps - 1) / (2 (1 - (1-b) eps)) = (1-b)(P - M) / (2 (M + bP)), because
    ab = (m-1)(1+b)/4 exactly: no cancellation between terms of size m. Where ``accepted`` is
    False, (P, M) hold no sample. On the CPU one compiled loop (``kernels.cpp``) does the same.
    """
    gamma, normal, exponential = _proposal_draws(kappa, m, count)
    if native.usable(kappa):
        return native.call("first_accepted", kappa.contiguous(), gamma, normal, exponential, m)
    chi2 = 2 * gamma
    larger = torch.sqrt(normal.square() + chi2) + normal.abs()
    smaller = chi2 / larger
    positive = normal >= 0
    p, q = torch.where(positive, larger, smaller), torch.where(positive, smaller, larger)
    b = envelope_b(kappa, m).unsqueeze(-1)
    y = (1 - b) * (p - q) / (2 * (q + b * p))
    accept = (m - 1) * (torch.log1p(y) - y) >= -exponential
    first = accept.to(torch.uint8).argmax(-1, keepdim=True)
    return p.gather(-1, first).squeeze(-1), q.gather(-1, first).squeeze(-1), accept.any(-1)


@torch.no_grad()
def accepted_complements(kappa: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, M) of the first accepted proposal under the envelope of every entry of ``kappa`` (no gradient).

    Eager code on the CPU runs the exact loop (:func:`_accepted_by_rounds`); everywhere else the
    sampler runs without host synchronisation or data-dependent shapes
    (:func:`_accepted_in_two_stages`), so that it can be captured in a CUDA graph, compiled with
    ``fullgraph=True`` and vmapped.
    """
    if _may_synchronise(kappa):
        return _accepted_by_rounds(kappa, m)
    return _accepted_in_two_stages(kappa, m)


def _may_synchronise(kappa: torch.Tensor) -> bool:
    """:func:`svae.native.may_synchronise` (a function of its own, for the tests to replace)."""
    return native.may_synchronise(kappa)


def _accepted_by_rounds(kappa: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All entries at once: the first round draws min(8, max(2, 4096 / n)) proposals per entry (small
    batches pay a fixed cost per round, so they draw more and almost never need a second one);
    later rounds redraw only for the entries still pending. Raises RuntimeError rather than
    return an unaccepted proposal.
    """
    count = min(_MAX_PROPOSALS, max(2, _PROPOSAL_BUDGET // max(kappa.numel(), 1)))
    p, q, done = _first_accepted(kappa, m, count)
    if bool(done.all()):
        return p, q
    p, q, done, flat_kappa = p.reshape(-1), q.reshape(-1), done.reshape(-1), kappa.reshape(-1)
    pending = (~done).nonzero().squeeze(-1)
    for _ in range(_MAX_ROUNDS - 1):
        new_p, new_q, new_done = _first_accepted(flat_kappa[pending], m, _MAX_PROPOSALS)
        p[pending[new_done]], q[pending[new_done]] = new_p[new_done], new_q[new_done]
        pending = pending[~new_done]
        if pending.numel() == 0:
            return p.reshape(kappa.shape), q.reshape(kappa.shape)
    raise RuntimeError(
        f"VonMisesFisher.rsample: {pending.numel()} of {kappa.numel()} samples had no accepted proposal "
        f"after {_MAX_ROUNDS} rounds; this happens only for non-finite parameters "
        f"(concentrations of the first pending samples: {flat_kappa[pending[:5]].tolist()})"
    )


def _second_stage_slots(n: int) -> int:
    """How many of n samples the second stage can take: 16 + n/16, 4.5 times the most pending on
    average (0.014 n) and, for small n, far above it (16 slots miss with probability 1e-13 at n = 100)."""
    return min(n, 16 + n // 16)


def _accepted_in_two_stages(kappa: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same draw in a fixed amount of work (see _FIRST_PROPOSALS): the samples still pending after
    the first stage are gathered into a buffer of 16 + n/16 slots by their rank among the pending
    (a cumulative sum), given more proposals, and scattered back; the rest stay NaN. Rejection
    sampling forgets its past rejections, so the second stage's accepted proposals have the same
    distribution as the first's."""
    flat = kappa.reshape(-1)
    n = flat.numel()
    p, q, done = _first_accepted(flat, m, _FIRST_PROPOSALS)
    slots = _second_stage_slots(n)
    pending = ~done
    rank = torch.cumsum(pending, 0) - 1
    # slot -> sample; a sample that is not pending or finds no slot writes to the spare slot `slots`,
    # and an empty slot points at the spare sample n
    sample_of_slot = torch.full((slots + 1,), n, dtype=torch.long, device=flat.device)
    slot = torch.where(pending & (rank < slots), rank, slots)
    sample_of_slot = sample_of_slot.scatter(0, slot, torch.arange(n, device=flat.device))[:slots]
    padded = torch.cat([flat, flat.new_ones(1)])  # the spare sample's concentration: any finite number
    more_p, more_q, more_done = _first_accepted(padded[sample_of_slot], m, _SECOND_PROPOSALS)

    def merged(first, second):
        return torch.cat([first, first.new_zeros(1)]).scatter(0, sample_of_slot, second)[:n]

    # a slot holds a pending sample, whose first-stage values are zeros: the scatter overwrites them
    p, q, done = merged(p, more_p), merged(q, more_q), merged(done, more_done) | done
    p, q = torch.where(done, p, math.nan), torch.where(done, q, math.nan)
    return p.reshape(kappa.shape), q.reshape(kappa.shape)
