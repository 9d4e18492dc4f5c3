"""Turn a sampled cosine omega = loc^T z into a point on the sphere, shared by vMF and Power Spherical."""
import torch


def rotate_from_pole(loc: torch.Tensor, one_minus_w: torch.Tensor, one_plus_w: torch.Tensor) -> torch.Tensor:
    r"""Return ``z`` on the sphere with ``loc^T z = w``, uniform in the orthogonal directions.

    ``w`` is given as ``1 - w`` and ``1 + w`` so that ``sqrt(1 - w^2)`` keeps full precision when
    ``w`` is close to +-1 (large concentrations). ``z' = (-s w, sqrt(1 - w^2) v)`` with ``v``
    uniform on ``S^{m-2}`` is reflected by the Householder matrix of ``u = e_1 + s loc``,
    ``s = sign(loc_1)``, which maps ``-s e_1`` to ``loc``; ``|u|^2 = 2 + 2|loc_1| >= 2`` never
    degenerates, whatever ``loc`` is.

    Args:
        loc: ``(..., m)`` unit vectors, broadcastable to the shape of ``one_minus_w`` plus ``(m,)``.
        one_minus_w, one_plus_w: tensors of the sample's batch shape.
    """
    m = loc.shape[-1]
    shape = one_minus_w.shape
    loc = loc.expand(shape + (m,))
    tangent = torch.randn(shape + (m - 1,), dtype=loc.dtype, device=loc.device)
    tangent = tangent / torch.linalg.vector_norm(tangent, dim=-1, keepdim=True)
    w = 0.5 * (one_plus_w - one_minus_w)
    # clamp: sqrt has an infinite derivative at 0, reached when a proposal lands exactly on a pole.
    sin_w = (one_minus_w * one_plus_w).clamp_min(torch.finfo(loc.dtype).tiny).sqrt()
    sign = torch.where(loc[..., :1] >= 0, 1.0, -1.0).to(loc.dtype)
    z = torch.cat([-sign * w.unsqueeze(-1), sin_w.unsqueeze(-1) * tangent], dim=-1)
    u = sign * loc
    u = torch.cat([u[..., :1] + 1, u[..., 1:]], dim=-1)
    coef = 2 * (u * z).sum(-1, keepdim=True) / (u * u).sum(-1, keepdim=True)
    return z - coef * u
