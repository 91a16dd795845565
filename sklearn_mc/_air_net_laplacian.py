"""The learned graph Laplacians of AIR-Net and their regularisers.

AIR-Net (Li, Xu, Zhang et al., *Adaptive and implicit regularization for
matrix completion*) learns a Laplacian for each side of the matrix from a
free square matrix ``P``, as the authors' code does: ``A₁ = softmin(P)`` row
by row, ``A = (A₁ + A₁ᵀ)/2``, ``L = diag(A·1) − A`` with zero-diagonal ``A``
(:func:`affinity`, :func:`laplacian`). A side's regulariser is the Dirichlet
energy ``tr(Yᵀ L Y)`` of the completion (:func:`dirichlet_energy`), which
:func:`regularisers` computes from the factors of the completion, never from
the completion itself.
"""

from __future__ import annotations

import numpy as np
import torch

from ._torch import to_numpy

# Standard deviation of the free Laplacian parameters at the start: tiny, so
# that every Laplacian starts as the uniform (complete-graph) one.
_LAPLACIAN_INIT_STD = 1e-3


def free_matrix(
    size: int,
    lam: float,
    every: int,
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor | None:
    """The trainable free matrix ``P`` of one side (None when ``lam`` is 0).

    Drawn tiny, so that the Laplacian starts as the uniform one, and stored
    divided by the Laplacian interval ``every``: Adam steps of the stored
    matrix are then ``every`` times larger in ``P``, and ``P`` keeps the
    schedule of an update at every iteration.
    """
    if lam == 0:
        return None
    p = torch.randn((size, size), generator=generator, dtype=torch.float64)
    p = p * _LAPLACIAN_INIT_STD / every
    p = p.to(device=device, dtype=dtype)
    return p.requires_grad_(True)


def affinity(free: torch.Tensor) -> torch.Tensor:
    """Symmetric affinity ``A`` of a free square matrix ``P``, as the authors do.

    ``A₁ = softmin(P)`` row by row (each row sums to 1), ``A = (A₁ + A₁ᵀ)/2``.
    The diagonal is left in: it cancels out of the Dirichlet energy (see
    :func:`dirichlet_energy`) and is zeroed only in :func:`laplacian`.
    """
    a = torch.softmax(-free, dim=1)
    return 0.5 * (a + a.T)


def dirichlet_energy(weights: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """``tr(Yᵀ L Y) = ½ Σ_kl A_kl ‖y_k − y_l‖²`` with ``L = diag(A1) − A``.

    Computed as ``Σ_k d_k ‖y_k‖² − ⟨Y, A Y⟩``: memory ``O(k² + k·p)`` for ``Y``
    of shape ``(k, p)``, never the ``k x k x p`` differences. The diagonal of
    ``A`` contributes ``A_kk‖y_k‖² − A_kk‖y_k‖² = 0``.
    """
    degree = weights.sum(dim=1)
    return (degree * (Y * Y).sum(dim=1)).sum() - (Y * (weights @ Y)).sum()


def dirichlet_energy_factored(
    weights: torch.Tensor, F: torch.Tensor, gram: torch.Tensor
) -> torch.Tensor:
    """:func:`dirichlet_energy` of ``Y = F G`` given ``F`` and ``gram = G Gᵀ``.

    ``Σ_k d_k F_k·gram·F_kᵀ − ⟨Fᵀ A F, gram⟩``: for ``F`` of shape ``(k, w)``
    it costs ``O(k²·w + k·w²)`` instead of ``O(k²·p)`` for ``Y`` of shape
    ``(k, p)``.
    """
    degree = weights.sum(dim=1)
    quad = ((F @ gram) * F).sum(dim=1)
    return (degree * quad).sum() - ((F.T @ (weights @ F)) * gram).sum()


def laplacian(free: torch.Tensor) -> np.ndarray:
    """The Laplacian ``L = diag(A1) − A`` (zero-diagonal ``A``) as a NumPy array."""
    with torch.no_grad():
        a = affinity(free.detach().to(device="cpu", dtype=torch.float64))
        a.fill_diagonal_(0.0)
        return to_numpy(torch.diag(a.sum(dim=1)) - a)


def regularisers(
    left: torch.Tensor,
    right: torch.Tensor | None,
    a_r: torch.Tensor | None,
    a_c: torch.Tensor | None,
    scale: float,
    zero: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column Dirichlet energies of ``X = left @ right``, times ``scale``.

    ``right`` None means ``X = left``; ``a_r`` / ``a_c`` None gives ``zero``
    for that side. Both traces come from the factors, never from ``X``:
    ``tr(Xᵀ L_r X)`` from ``A_r left`` (``m²·width`` work, not ``m²·n``) and
    ``tr(X L_c Xᵀ)`` from ``A_c rightᵀ`` (``n²·width``).
    """
    reg_r = reg_c = zero
    if a_r is not None:
        if right is None:
            reg_r = dirichlet_energy(a_r, left)
        else:
            reg_r = dirichlet_energy_factored(a_r, left, right @ right.T)
        reg_r = reg_r * scale
    if a_c is not None:
        if right is None:
            reg_c = dirichlet_energy(a_c, left.T)
        else:
            reg_c = dirichlet_energy_factored(a_c, right.T, left.T @ left)
        reg_c = reg_c * scale
    return reg_r, reg_c
