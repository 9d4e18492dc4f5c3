r"""Modified Bessel functions of the first kind, in log space, in torch.

Only what hyperspherical distributions need, for orders :math:`v \ge 0` and arguments
:math:`x \ge 0` (outside, a ValueError; NaN gives NaN), on any device, batched, for every
floating dtype, with analytic derivatives in ``x``. The computation runs in
float64 whatever the input dtype (it is elementwise over a batch, so this costs little) and
the result is rounded to the input's dtype; only on devices without float64 (Apple MPS) does
it run in float32, with its own constants:

* :func:`log_ive` :math:`= \log(I_v(x) e^{-x})`
* :func:`log_ive_over_power` :math:`= \log(I_v(x) e^{-x} x^{-v})`, finite at ``x = 0``; the vMF
  log-normaliser is built on it
* :func:`iv_ratio` :math:`= I_v(x) / I_{v-1}(x)`

Two regimes, chosen per element (see ``docs/numerics.md``):

* :math:`r = \sqrt{v^2 + x^2} \ge r_0`: Olver's uniform (Debye) expansion
  :math:`I_v(x) \sim e^{v\eta} (2\pi r)^{-1/2} \sum_k U_k(p) / v^k`, rewritten as
  :math:`\sum_k r^{-k} P_k(p^2)` with :math:`p = v/r`, which stays valid down to ``v = 0``
  (where it is Hankel's large-``x`` expansion).
* :math:`r < r_0`: the power series :math:`I_v(x) = (x/2)^v/\Gamma(v+1) \sum_k
  (x^2/4)^k / (k!\,(v+1)_k)`, a sum of positive terms.

On CPU tensors in float64 the same evaluation runs as one compiled loop over the elements
(:mod:`svae.native`), forward and backward; the torch code here is its reference and the path of
every other device.

Ratios are never formed by subtracting two large logarithms: the leading Debye terms of
consecutive orders are differenced analytically, so ``iv_ratio`` and its complement ``1 - R``
keep full relative precision at any size of ``v`` and ``x``.
"""
from __future__ import annotations

import math
from fractions import Fraction

import torch

from svae import native

__all__ = ["log_ive", "log_ive_over_power", "iv_ratio", "iv_ratio_and_complement", "log_ive_over_power_and_ratio"]


# Per precision: the Debye threshold r0, the number of Debye terms, and of power-series terms.
# Chosen from measured errors against mpmath (scripts/bessel_reference.py, docs/numerics.md):
# the truncation error of the Debye sum at r = r0 is below the precision's epsilon, and the
# power series has converged at x = r0.
_REGIMES = {
    torch.float64: (30.0, 14, 50),
    torch.float32: (12.0, 6, 22),
}


def _debye_coefficients(terms: int) -> list[list[Fraction]]:
    """Rows k = 1..terms of the coefficients of P_k(q), where U_k(p) = p^k P_k(p^2).

    Olver's polynomials follow U_0 = 1,
    U_{k+1}(p) = p^2 (1 - p^2) U_k'(p) / 2 + (1/8) int_0^p (1 - 5 t^2) U_k(t) dt.
    """
    rows, u = [], [Fraction(1)]  # u[i] = coefficient of p^i in U_k
    for k in range(1, terms + 1):
        nxt = [Fraction(0)] * (len(u) + 3)
        for i, c in enumerate(u):
            if i:  # p^2 (1 - p^2) i c p^(i-1) / 2
                nxt[i + 1] += i * c / 2
                nxt[i + 3] -= i * c / 2
            nxt[i + 1] += c / (8 * (i + 1))  # (1/8) int c t^i
            nxt[i + 3] -= 5 * c / (8 * (i + 3))  # (1/8) int -5 c t^(i+2)
        u = nxt
        rows.append([u[k + 2 * j] for j in range(k + 1)])
    return rows


_DEBYE_ROWS = [[float(c) for c in row] for row in _debye_coefficients(max(r[1] for r in _REGIMES.values()))]


@native.cached()
def _constants(dtype: torch.dtype, device: torch.device):
    r0, debye_terms, series_terms = _REGIMES[dtype]
    coef = torch.zeros(debye_terms + 1, debye_terms, dtype=torch.float64)  # [power of q, k - 1]
    for k, row in enumerate(_DEBYE_ROWS[:debye_terms]):
        coef[: len(row), k] = torch.tensor(row, dtype=torch.float64)
    k = torch.arange(1, series_terms + 1, dtype=dtype, device=device)
    return r0, coef.to(dtype=dtype, device=device), k


def wide_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 for intermediate results that need the extra precision, or float32 on devices
    without float64 (Apple MPS)."""
    return torch.float32 if x.device.type == "mps" else torch.float64


def _stack_orders(v, like: torch.Tensor) -> torch.Tensor:
    """The orders (v, v + 1) stacked along a new first dimension, broadcastable against ``like``."""
    if isinstance(v, torch.Tensor):
        return torch.stack([v, v + 1])
    # made on the device (arange + v), not copied from the host: CUDA graphs cannot capture a copy
    return (torch.arange(2, dtype=like.dtype, device=like.device) + v).view(2, *([1] * like.dim()))


@native.cached(maxsize=256)
def _series_denominators(v: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """k (nu + k) for nu = v, v + 1 and k = 1..K: the ratio of consecutive series terms, per order."""
    k = _constants(dtype, device)[2]
    return torch.stack([k * (v + k), k * (v + 1 + k)])


def _debye_log_sum(nu, r, coef):
    """log sum_k r^-k P_k((nu/r)^2), the correction factor of the Debye expansion.

    coef[j, k] is the coefficient of q^j in P_{k+1}(q): the powers of q times coef give all P_k at once.
    """
    terms = coef.shape[1]
    t = r.reciprocal().unsqueeze(-1)
    q_powers = torch.cumprod((nu.unsqueeze(-1) * t).square().expand(*t.shape[:-1], terms), dim=-1)
    poly = torch.addmm(coef[0], q_powers.reshape(-1, terms), coef[1:]).reshape(q_powers.shape)
    t_powers = torch.cumprod(t.expand_as(poly), dim=-1)
    return torch.log1p((t_powers * poly).sum(-1))


def _debye_terms(v, x, coef, with_log_ive: bool = True):
    """(log_ive_v or None, log_ive_over_power_v, log R_{v+1}) by the uniform expansion (r >= r0).

    ``v`` is a number or a tensor shaped like ``x``.
    """
    v1 = v + 1
    # hypot, not sqrt(x^2 + v^2): x^2 overflows above 1e154 (float64)
    orders = [nu if isinstance(nu, torch.Tensor) else x.new_full((), nu) for nu in (v, v1)]
    r, r1 = torch.hypot(x, orders[0]), torch.hypot(x, orders[1])
    log_sums = _debye_log_sum(_stack_orders(v, x), torch.stack([r, r1]), coef)
    common = v * v / (r + x) - 0.5 * torch.log(2 * math.pi * r) + log_sums[0]
    log_ive_v = common - v * torch.asinh(v / x) if with_log_ive else None
    log_over_power = common - v * torch.log(v + r)
    # log I_{v+1} - log I_v with the leading terms differenced by hand:
    # r1 - r = (2v+1)/(r1 + r) and asinh((v+1)/x) - asinh(v/x) = asinh((2v+1)/((v+1) r + v r1)).
    two_v1 = 2 * v + 1
    r_sum = r1 + r
    log_ratio = (
        two_v1 / r_sum
        - torch.asinh(v1 / x)
        - v * torch.asinh(two_v1 / (v1 * r + v * r1))
        - 0.5 * torch.log1p(two_v1 / (r_sum * r))
        + (log_sums[1] - log_sums[0])
    )
    return log_ive_v, log_over_power, log_ratio


def _series_terms(v, x, k, with_log_ive: bool = True):
    """The same three values from the power series of I_v (r < r0, so x < r0)."""
    if isinstance(v, torch.Tensor):
        denominators = k * (_stack_orders(v, x).unsqueeze(-1) + k)
        lgamma_v1 = torch.lgamma(v + 1)
    else:
        denominators = _series_denominators(float(v), x.dtype, x.device).view(2, *([1] * x.dim()), -1)
        lgamma_v1 = math.lgamma(v + 1)
    # sum_{k>=1} (x^2/4)^k / (k! (nu+1)_k), a sum of positive terms
    tails = torch.cumprod((x.square() / 4).unsqueeze(-1) / denominators, dim=-1).sum(-1)
    log_tails = torch.log1p(tails)
    log_over_power = log_tails[0] - x - (v * math.log(2) + lgamma_v1)
    log_ive_v = log_over_power + torch.xlogy(v, x) if with_log_ive else None
    log_ratio = torch.log(x / (2 * (v + 1))) + log_tails[1] - log_tails[0]
    return log_ive_v, log_over_power, log_ratio


def _bessel_terms(v, x: torch.Tensor, with_log_ive: bool = True):
    """Forward values (log_ive_v, log_ive_over_power_v, log R_{v+1}), R_{v+1} = I_{v+1}/I_v.

    ``v`` is a number or a tensor shaped like ``x``. Both regimes are evaluated on every element
    and each element takes its own: no host synchronisation and no shape that depends on the
    values, so the same code runs under CUDA graphs, torch.compile and vmap. (The regime not taken
    may hold inf or NaN; the analytic backward never differentiates it.) Eager CPU code, where
    reading a value costs nothing, evaluates one regime alone when every element is in it.
    """
    r0, coef, k = _constants(x.dtype, x.device)
    debye = x.square() + v * v >= r0 * r0
    if native.may_synchronise(v, x):
        if bool(debye.all()):
            return _debye_terms(v, x, coef, with_log_ive)
        if not bool(debye.any()):
            return _series_terms(v, x, k, with_log_ive)
    expansions = zip(_debye_terms(v, x, coef, with_log_ive), _series_terms(v, x, k, with_log_ive))
    return [None if large is None else torch.where(debye, large, small) for large, small in expansions]


def _compiled(x: torch.Tensor) -> bool:
    """Whether the compiled loop evaluates these arguments (float64 on the CPU)."""
    return x.dtype == torch.float64 and native.usable(x)


def _loop_order(v):
    """The order as the loop takes it: (a float64 tensor shaped like x, or None; a number)."""
    return (v.contiguous(), 0.0) if isinstance(v, torch.Tensor) else (None, float(v))


class _Bessel(torch.autograd.Function):
    """(v, x) -> (log_ive_v or None, log_ive_over_power_v, R_{v+1}, 1 - R_{v+1}) with analytic backward.

    ``v`` (not differentiated) is a number or a tensor shaped like ``x``. Written for torch.func
    (``setup_context``; vmap by running forward and backward batched, which they support).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(v, x, with_log_ive):
        if _compiled(x):
            r0, coef, k = _constants(x.dtype, x.device)
            log_ive_v, log_over_power, ratio, complement = native.call(
                "bessel_terms", x.contiguous(), *_loop_order(v), r0, coef, k.numel(), with_log_ive)
            log_ive_v = log_ive_v if with_log_ive else None
        else:
            log_ive_v, log_over_power, log_ratio = _bessel_terms(v, x, with_log_ive)
            ratio, complement = log_ratio.exp(), -torch.expm1(log_ratio)
        return log_ive_v, log_over_power, ratio, complement

    @staticmethod
    def setup_context(ctx, inputs, output):
        v, x, _ = inputs
        ctx.set_materialize_grads(False)  # unused outputs give None, not 0 * inf at x = 0
        ctx.v_is_tensor = isinstance(v, torch.Tensor)
        ctx.v = None if ctx.v_is_tensor else v
        ctx.save_for_backward(x, output[2], output[3], *([v] if ctx.v_is_tensor else []))

    @staticmethod
    def backward(ctx, g_log_ive, g_log_over_power, g_ratio, g_complement):
        x, ratio, complement, *v = ctx.saved_tensors
        v = v[0] if ctx.v_is_tensor else ctx.v
        if _compiled(x) and not torch.is_grad_enabled():
            grads = [g if g is None else g.contiguous() for g in (g_log_ive, g_log_over_power, g_ratio, g_complement)]
            # x as the user gave it: an expanded concentration (stride 0) is not contiguous
            return None, native.call("bessel_backward", x.contiguous(), *_loop_order(v), ratio, complement,
                                     *grads), None
        # The torch code below is differentiable again: it serves double backward too.
        positive = x > 0
        safe_x = torch.where(positive, x, torch.ones_like(x))
        grad = torch.zeros_like(x)
        if g_log_ive is not None:
            # d/dx log I_v = I_{v+1}/I_v + v/x; at x = 0 the limit is +inf for v > 0.
            at_zero = torch.where(v > 0, math.inf, 0.0) if isinstance(v, torch.Tensor) else (math.inf if v > 0 else 0.0)
            v_over_x = torch.where(positive, v / safe_x, at_zero)
            grad = grad + g_log_ive * (v_over_x - complement)
        if g_log_over_power is not None:
            grad = grad - g_log_over_power * complement
        if g_ratio is not None or g_complement is not None:
            # Riccati equation of R_{v+1}: R' = 1 - R^2 - (2v+1) R/x, R/x -> 1/(2v+2) at x = 0.
            r_over_x = torch.where(positive, ratio / safe_x, 1 / (2 * v + 2))
            d_ratio = complement * (1 + ratio) - (2 * v + 1) * r_over_x
            if g_ratio is not None:
                grad = grad + g_ratio * d_ratio
            if g_complement is not None:
                grad = grad - g_complement * d_ratio
        return None, grad, None


_bessel = native.applier(_Bessel)


def _prepare(v, x, dtype=None):
    """(order, x in the computation dtype, the output dtype, whether the domain was checked); a
    numeric order stays a number.

    Raises ValueError outside the domain v >= 0, x >= 0 where it checks (NaN arguments give NaN).
    """
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x, dtype=torch.get_default_dtype())
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    checked = _check_domain(v, x)
    dtype = dtype or wide_dtype(x)
    # a tensor order stays one where it may hold several values (under vmap a 0-d tensor may)
    if isinstance(v, torch.Tensor) and (v.dim() > 0 or native.transformed()):
        v, xc = torch.broadcast_tensors(v.to(dtype=dtype, device=x.device), x.to(dtype))
    else:
        v, xc = float(v), x.to(dtype)
    return v, xc, x.dtype, checked


def _check_domain(v, x: torch.Tensor) -> bool:
    """The functions here are defined for orders v >= 0 and arguments x >= 0; outside, the
    recurrences and expansions they use give NaN or values of the wrong sign, so refuse, where
    checking costs nothing (:func:`svae.native.may_synchronise`); elsewhere the values are NaN
    (:func:`_nan_outside`). Whether it checked."""
    if not native.may_synchronise(v, x):
        return False
    if (bool((v < 0).any()) if isinstance(v, torch.Tensor) else v < 0):
        raise ValueError(f"svae.special: the order v must be >= 0, got {_show(v)}")
    if bool((x < 0).any()):
        raise ValueError(f"svae.special: the argument x must be >= 0, got {_show(x)}")
    return True


def _nan_outside(v, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value``, NaN where (v, x) is outside the domain (where :func:`_check_domain` did not check)."""
    return torch.where((x < 0) | (v < 0), math.nan, value)


def _show(values) -> str:
    """The first negative entries of ``values``, for an error message."""
    values = torch.as_tensor(values)
    return str(values.item()) if values.dim() == 0 else f"negative entries {values[values < 0][:5].tolist()}"


def _apply(v, x, compute_dtype=None, outputs=(0, 1, 2, 3), rounded=True):
    """The outputs of _Bessel listed in ``outputs``, converted back to the input's dtype unless
    ``rounded`` is False (then in the computation dtype, for callers that go on computing)."""
    v, xc, out_dtype, checked = _prepare(v, x, compute_dtype)
    values = _bessel(v, xc, 0 in outputs)
    if not checked:
        values = [None if value is None else _nan_outside(v, xc, value) for value in values]
    return [values[i].to(out_dtype) if rounded else values[i] for i in outputs]


def log_ive(v, x: torch.Tensor) -> torch.Tensor:
    r"""``log(I_v(x) * exp(-x))``, the log of the exponentially scaled modified Bessel function.

    Args:
        v: order(s) ``>= 0``, a number or a tensor broadcastable with ``x`` (not differentiated).
        x: argument(s) ``>= 0``; ``x = 0`` gives the limit (``0`` for ``v = 0``, else ``-inf``).

    Example:
        >>> log_ive(0.5, torch.tensor([1.0]))  # log(sqrt(2/pi) sinh(1) e^-1)
        tensor([-1.0644])
    """
    return _apply(v, x, outputs=(0,))[0]


def log_ive_over_power(v, x: torch.Tensor, *, rounded: bool = True) -> torch.Tensor:
    r"""``log(I_v(x) * exp(-x) / x**v)``: smooth at ``x = 0``, where it is
    ``-v log 2 - lgamma(v + 1)``. Its derivative is ``I_{v+1}(x)/I_v(x) - 1``.

    The von Mises-Fisher log-normaliser is built on it, so that ``kappa -> 0`` needs no special case.
    ``rounded=False``: in the computation dtype, as for :func:`log_ive_over_power_and_ratio`.
    """
    return _apply(v, x, outputs=(1,), rounded=rounded)[0]


def iv_ratio_and_complement(v, x: torch.Tensor, *, rounded: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(R, 1 - R)`` with ``R = I_v(x) / I_{v-1}(x)``, both to full relative precision, for ``v >= 1``.

    The complement matters for large ``x``, where ``R -> 1`` and ``1 - R ~ (2v - 1)/(2x)``.
    ``rounded=False``: in the computation dtype, as for :func:`log_ive_over_power_and_ratio`.
    """
    if native.may_synchronise(v) and bool((torch.as_tensor(v) < 1).any()):
        raise ValueError(f"iv_ratio_and_complement: expected orders v >= 1, got {v!r}")
    ratio, complement = _apply(v - 1, x, outputs=(2, 3), rounded=rounded)
    return ratio, complement


def iv_ratio(v, x: torch.Tensor) -> torch.Tensor:
    r"""``I_v(x) / I_{v-1}(x)`` for ``v >= 0`` and ``x >= 0`` (at ``x = 0``: ``0``, or ``inf`` for ``v = 0``).

    For ``v >= 1`` this is the ratio of the Debye/series evaluation at order ``v - 1``; for
    ``0 <= v < 1`` it follows from ``R_v = x / (2v + x R_{v+1})`` (three-term recurrence).
    The derivative in ``x`` is ``1 - R^2 - (2v - 1) R / x``.
    """
    v, xc, out_dtype, checked = _prepare(v, x)
    v_t = v if isinstance(v, torch.Tensor) else xc.new_full((), v)
    low = v_t < 1
    base = torch.where(low, v_t, v_t - 1) if isinstance(v, torch.Tensor) else (v if v < 1 else v - 1)
    ratio_next = _bessel(base, xc, False)[2]  # R_{base+1}
    from_recurrence = xc / (2 * v_t + xc * ratio_next)
    from_recurrence = torch.where((xc == 0) & (v_t == 0), math.inf, from_recurrence)
    ratio = torch.where(low, from_recurrence, ratio_next)
    return (ratio if checked else _nan_outside(v, xc, ratio)).to(out_dtype)


def log_ive_over_power_and_ratio(v, x: torch.Tensor, *, rounded: bool = True
                                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""``(log_ive_over_power(v, x), R, 1 - R)`` with ``R = I_{v+1}(x) / I_v(x)``, from one evaluation.

    Everything the von Mises-Fisher KL and entropy need (``v = m/2 - 1``, ``R = A_m``).
    ``rounded=False`` returns them in the computation dtype (float64 except on Apple MPS), for
    callers that combine them into a quantity that is then rounded once.
    """
    log_over_power, ratio, complement = _apply(v, x, outputs=(1, 2, 3), rounded=rounded)
    return log_over_power, ratio, complement
