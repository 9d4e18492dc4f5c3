"""Turn a sampled cosine w = loc^T z into a point on the sphere, shared by vMF and Power Spherical."""
import torch

from svae import native


def tangent_directions(shape: torch.Size, m: int, *, dtype=None, device=None) -> torch.Tensor:
    """``shape + (m,)`` unit vectors uniform on the great sphere orthogonal to ``e_1``.

    Samplers draw these before the cosine: a rejection sampler or a Gamma draw consumes a number of
    random numbers that depends on the parameters, and drawing the cosine last keeps the directions
    on the same random numbers when the parameters change a little (common random numbers, as the
    validation ELBO of ``svae.train.fit`` relies on). See :func:`uniform_directions` for the
    draws that are exactly 0.
    """
    if m == 2:
        return torch.nn.functional.pad(_random_signs(shape + (1,), dtype, device), (1, 0))
    noise = torch.randn(shape + (m,), dtype=dtype, device=device)
    noise[..., 0] = 0
    return _normalized(noise, 1)


def uniform_directions(shape: torch.Size, m: int, *, dtype=None, device=None) -> torch.Tensor:
    """``shape + (m,)`` unit vectors uniform on the sphere in ``R^m`` (``m = 1``: a random sign).

    A normalised Gaussian vector, except that torch's float32 normal sampler returns an exact 0
    about once in 2^24 draws: for one coordinate (the circle's tangent in a vMF or Power Spherical
    sampler at m = 2) that was 0/0 in one sample in 17 million, so a sign is drawn instead. For
    two or more every coordinate must be 0 at once (below 1e-14 in float32); such a vector
    becomes a unit vector along one axis rather than 0/0.
    """
    if m == 1:
        return _random_signs(shape + (1,), dtype, device)
    return _normalized(torch.randn(shape + (m,), dtype=dtype, device=device), 0)


def _random_signs(shape, dtype, device) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device=device).bernoulli_(0.5).mul_(2).sub_(1)


def _normalized(noise: torch.Tensor, axis: int) -> torch.Tensor:
    """``noise`` over its norm, with sqrt(tiny) added to coordinate ``axis`` first: it squares to a
    normal number, so a vector of zeros becomes that axis, and lies far below half an ulp of any
    nonzero draw (>= 1e-11), which it leaves unchanged."""
    noise.select(-1, axis).add_(torch.finfo(noise.dtype).tiny ** 0.5)
    return noise / torch.linalg.vector_norm(noise, dim=-1, keepdim=True)


def rotate_from_pole(loc: torch.Tensor, one_minus_w: torch.Tensor, one_plus_w: torch.Tensor,
                     v: torch.Tensor) -> torch.Tensor:
    r"""Return ``z`` on the sphere with ``loc^T z = w`` and tangent direction ``v`` (uniform ``v`` gives
    ``z`` uniform in the directions orthogonal to ``loc``).

    ``w`` is given as ``1 - w`` and ``1 + w`` so that ``sqrt(1 - w^2)`` keeps full precision when
    ``w`` is close to +-1 (large concentrations). The point ``z' = -s w e_1 + sqrt(1 - w^2) v`` is
    reflected by the Householder matrix ``H`` of ``u = e_1 + s loc``, ``s = sign(loc_1)``: ``H``
    maps ``-s e_1`` to ``loc``, and ``|u|^2 = 2 + 2|loc_1| >= 2`` never degenerates, whatever
    ``loc`` is (the classic ``u = e_1 - loc`` vanishes at ``loc = e_1``). In closed form, with
    ``d = loc^T v / (1 + |loc_1|)``: ``H z' = w loc + sqrt(1 - w^2) (v - d loc - s d e_1)``.

    Args:
        loc: ``(..., m)`` unit vectors, broadcastable to the shape of ``one_minus_w`` plus ``(m,)``.
        one_minus_w, one_plus_w: tensors of the sample's batch shape.
        v: unit vectors orthogonal to ``e_1``, shaped like the sample (:func:`tangent_directions`).
    """
    if native.usable(loc, one_minus_w, one_plus_w, v):
        (loc_rows, v_rows), cosines = native.rows(v.shape, (loc, v), (one_minus_w, one_plus_w))
        return _compiled_rotation(loc_rows, *cosines, v_rows)
    return _rotate(loc, one_minus_w, one_plus_w, v)


def _rotate(loc, one_minus_w, one_plus_w, v):
    w = 0.5 * (one_plus_w - one_minus_w)
    # clamp: sqrt has an infinite derivative at 0, reached when a proposal lands exactly on a pole.
    sin_w = (one_minus_w * one_plus_w).clamp_min(torch.finfo(loc.dtype).tiny).sqrt()
    loc_1 = loc[..., 0]
    d = (loc * v).sum(-1) / (1 + loc_1.abs())
    z = (w - sin_w * d).unsqueeze(-1) * loc + sin_w.unsqueeze(-1) * v
    s_d = torch.where(loc_1 >= 0, d, -d)
    return torch.select_scatter(z, z[..., 0] - sin_w * s_d, -1, 0)


_compiled_rotation = native.compiled("rotate_from_pole", _rotate)
