r"""The Spherical Cauchy's KL to the uniform distribution and mean resultant length, in float64.

With :math:`d = m - 1` degrees of freedom, :math:`x = \rho^2` and :math:`a = (d - 1)/2`, a sample is
the Möbius image of a uniform :math:`y`, and :math:`\log q` at it is
:math:`d \log(|y + \phi|^2 / (1 - \rho^2)) - \log|S^d|`, so with :math:`u = \mu^T y` (density
:math:`\propto (1 - u^2)^{(d-2)/2}`) both quantities are expectations over ``u``:

* :math:`\mathrm{KL}/d = E[\log(1 + x + 2\rho u)] - \log(1 - x)`. Expanding the logarithm in
  Chebyshev polynomials and taking their expectations (:math:`E[T_{2k}(u)] = c_k`) gives
  :math:`\mathrm{KL}/d = -\log(1 - x) - \sum_{k \ge 1} c_k\, x^k / k` with
  :math:`c_k = (-a)_k / (a + 1)_k`, :math:`|c_k| \le 1`: the two parts are both positive at small
  ``x`` (:math:`c_1 < 0`), and the sum is bounded up to :math:`\rho = 1`.
* The mean is :math:`E[\mu^T z]\,\mu`, with
  :math:`E[\mu^T z] = ((1 + x) - (1 - x)^2 F(x)) / (2\rho)` and
  :math:`F(x) = E[1 / (1 + x + 2\rho u)] = \sum_{k \ge 0} e_k x^k`, :math:`e_k = (1 - a)_k / (a + 1)_k`
  (a quadratic transformation of a Gauss function); the division by :math:`\rho` is done on the
  coefficients, :math:`E[\mu^T z] = \rho \sum_j h_j x^j / 2`, :math:`h_0 = 3 - e_1`,
  :math:`h_j = -(e_{j+1} - 2 e_j + e_{j-1})`.

For odd ``d`` (``a`` an integer) both series end after ``a + 1`` terms: they are closed forms in
:math:`\rho`. For even ``d`` the coefficients fall like :math:`k^{-d}`; where that is slow
(``d <= 8`` near :math:`\rho = 1`) the sums are written instead with the partial fractions of
:math:`c_k` and :math:`e_k` in ``k`` (rational in ``k`` when ``a`` is a half-integer), which turn each
into sums of :math:`\sum_{k \ge 0} x^k/(k + \gamma) = 2 \rho^{-2\gamma}\sum_{n \ge 2\gamma,\ n\ \mathrm{odd}}
\rho^n/n`, an ``atanh`` less a few powers. Those forms cancel at small :math:`\rho` and are used
only above :data:`_CLOSED_FORM_FROM`.
"""
from __future__ import annotations

import math

import torch

from svae import native

# Below this rho the closed forms of small even d cancel (their terms grow like rho^-d); the series
# in x = rho^2 <= 0.49 then converge to below 2^-53 in :data:`_SERIES_TERMS` terms.
_CLOSED_FORM_FROM = 0.7
_SERIES_TERMS = 64
_LARGEST_CLOSED_FORM_DIM = 8
_NEGLIGIBLE = 1e-18


def _series_length(d: int) -> int:
    """Terms of the series in x that reach float64 precision for every rho in [0, 1) the series
    serve: all of them for odd d (finite sums) and even d > 8 (the coefficients' tails below
    1e-18), the first 64 (rho <= 0.7) for even d <= 8."""
    a = 0.5 * (d - 1)
    if d % 2:
        return int(a) + 2
    if d <= _LARGEST_CLOSED_FORM_DIM:
        return _SERIES_TERMS
    c, e_prev, e, k = -a / (a + 1), 1.0, (1 - a) / (a + 1), 1
    while k <= a + 1 or abs(c) > _NEGLIGIBLE or abs(e - e_prev) > _NEGLIGIBLE:
        c, e_prev, e, k = c * (k - a) / (a + 1 + k), e, e * (k + 1 - a) / (a + 1 + k), k + 1
    return k + 1


def _coefficients_in_python(d: int) -> tuple[list[float], list[float]]:
    """(-c_k/k for k = 1..n, h_j / 2 for j = 0..n-1) with n = :func:`_series_length`."""
    a, n = 0.5 * (d - 1), _series_length(d)
    c = [-a / (a + 1)]
    e = [1.0]
    for k in range(1, n + 1):
        c.append(c[-1] * (k - a) / (a + 1 + k))
        e.append(e[-1] * (k - a) / (a + k))  # e_k = e_{k-1} (k - 1 - a + 1) / (a + 1 + k - 1)
    kl = [-c[k - 1] / k for k in range(1, n + 1)]
    h = [0.5 * (3 - e[1])] + [-0.5 * (e[j + 1] - 2 * e[j] + e[j - 1]) for j in range(1, n)]
    return kl, h


@native.cached(maxsize=256)
def _coefficients(d: int, dtype: torch.dtype, device: torch.device):
    """The series' coefficients as tensors (made once per dimension, dtype and device), and the
    powers k = 1..n they multiply."""
    kl, h = _coefficients_in_python(d)
    powers = torch.arange(1, len(kl) + 1, dtype=dtype, device=device)
    return (torch.tensor(kl, dtype=dtype, device=device), torch.tensor(h, dtype=dtype, device=device),
            powers)


def _odd_powers_sum(r: torch.Tensor, start: int) -> torch.Tensor:
    r"""The sum of :math:`r^n / n` over odd ``n >= start`` (``start`` odd, possibly negative), for
    ``r`` in [0.7, 1): atanh(r) less the terms below ``start`` (or plus the negative powers)."""
    total = torch.atanh(r)
    for n in range(1, start, 2):
        total = total - r ** n / n
    for n in range(start, 0, 2):
        total = total + r ** n / n
    return total


def _lerch_half_integer(r: torch.Tensor, gamma: float) -> torch.Tensor:
    r""":math:`\sum_{k \ge 0} r^{2k} / (k + \gamma)` for a half-integer :math:`\gamma`."""
    return 2 * r ** (-2 * gamma) * _odd_powers_sum(r, round(2 * gamma))


def _partial_fractions(shifts: list[float]) -> list[float]:
    r"""Residues :math:`A_j` of :math:`1 / \prod_i (k + s_i)` at :math:`k = -s_j` (distinct shifts)."""
    return [1 / math.prod([s_i - s_j for i, s_i in enumerate(shifts) if i != j]) for j, s_j in enumerate(shifts)]


@native.cached()
def _partial_fraction_terms(d: int) -> tuple[list, list]:
    """For even d: [(C A_j / b_j, b_j)] with KL/d = sum of C A_j / b_j sum_{k>=1} x^k / (k + b_j), and
    [(C' A'_j, g_j)] with F = sum of C' A'_j sum_{k>=0} x^k / (k + g_j) (module doc)."""
    a = 0.5 * (d - 1)
    # c_k = C / prod_{j < d} (k - a + j), C = Gamma(a + 1) / Gamma(-a); the residue at k = 0 of
    # c_k / k is C / prod(j - a) = 1, which cancels -log(1 - x)
    shifts = [j - a for j in range(d)]
    c_scale = math.gamma(a + 1) / math.gamma(-a)
    kl_terms = [(c_scale * weight / b, b) for weight, b in zip(_partial_fractions(shifts), shifts)]
    # e_k = C' / prod_{j < d - 1} (k + 1 - a + j), C' = Gamma(a + 1) / Gamma(1 - a)
    shifts = [1 - a + j for j in range(d - 1)]
    e_scale = math.gamma(a + 1) / math.gamma(1 - a)
    f_terms = [(e_scale * weight, g) for weight, g in zip(_partial_fractions(shifts), shifts)]
    return kl_terms, f_terms


def _closed_form_kl(r: torch.Tensor, d: int) -> torch.Tensor:
    """KL / d for even d <= 8 and r >= 0.7, from the partial fractions (module doc)."""
    kl = torch.zeros_like(r)
    for weight, b in _partial_fraction_terms(d)[0]:
        kl = kl + weight * (_lerch_half_integer(r, b) - 1 / b)
    return kl


def _closed_form_mean(r: torch.Tensor, d: int) -> torch.Tensor:
    """E[mu^T z] for even d <= 8 and r >= 0.7, from the partial fractions of F (module doc)."""
    f = torch.zeros_like(r)
    for weight, g in _partial_fraction_terms(d)[1]:
        f = f + weight * _lerch_half_integer(r, g)
    return ((1 + r * r) - (1 - r) ** 2 * (1 + r) ** 2 * f) / (2 * r)


def _minus_log1m_square(r: torch.Tensor) -> torch.Tensor:
    """-log(1 - r^2): from r^2 at small r (log1p(-r) + log1p(r) cancels there, to eps / r), from
    1 - r and 1 + r near 1 (1 - r^2 formed from a rounded r^2 loses eps / (1 - r^2))."""
    return torch.where(r < 0.5, -torch.log1p(-r * r), -(torch.log1p(-r) + torch.log1p(r)))


def _series_kl(r: torch.Tensor, d: int) -> torch.Tensor:
    """KL / d from the series in x = r^2 (module doc)."""
    coefficients, _, powers = _coefficients(d, r.dtype, r.device)
    return _minus_log1m_square(r) + ((r * r).unsqueeze(-1) ** powers * coefficients).sum(-1)


def _series_mean(r: torch.Tensor, d: int) -> torch.Tensor:
    """E[mu^T z] from the series in x = r^2 (module doc)."""
    _, h, powers = _coefficients(d, r.dtype, r.device)
    x_powers = (r * r).unsqueeze(-1) ** powers[:-1]  # x^1 .. x^(n-1)
    return r * (h[0] + (x_powers * h[1:]).sum(-1))


def _evaluate(rho: torch.Tensor, d: int, series, closed_form) -> torch.Tensor:
    """``series`` where it converges in a fixed number of terms, else ``closed_form`` (even d <= 8,
    rho >= 0.7); both forms on inputs clamped to their range, so that neither is NaN in value or
    gradient where the other is taken."""
    if d % 2 or d > _LARGEST_CLOSED_FORM_DIM:
        return series(rho, d)
    near = rho >= _CLOSED_FORM_FROM
    return torch.where(near, closed_form(rho.clamp(min=_CLOSED_FORM_FROM), d),
                       series(rho.clamp(max=_CLOSED_FORM_FROM), d))


def kl_to_uniform(rho: torch.Tensor, d: int) -> torch.Tensor:
    """KL(q || uniform) of a Spherical Cauchy on S^d with concentration ``rho`` in [0, 1)."""
    return d * _evaluate(rho, d, _series_kl, _closed_form_kl)


def mean_length(rho: torch.Tensor, d: int) -> torch.Tensor:
    """E[mu^T z] of a Spherical Cauchy on S^d with concentration ``rho`` in [0, 1)."""
    return _evaluate(rho, d, _series_mean, _closed_form_mean)
