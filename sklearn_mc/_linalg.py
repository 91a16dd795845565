"""Shared linear algebra of the factorisation methods.

Small batched kernels that several methods wrote separately:

* :func:`solve_spd`: batched symmetric positive definite solves (Cholesky,
  falling back to least squares when a factorisation fails);
* :func:`masked_gram` (with :func:`outer_products`): per-row Gram matrices
  ``Σ_j M_ij f_j f_jᵀ`` of a fixed feature matrix under a mask, plus a ridge;
* :func:`ridge_fold_in`: the masked ridge regression of many rows on a fixed
  basis at once (fold-in of new rows, one ALS half-sweep);
* :func:`randomized_range`, :func:`low_rank_svd` and
  :func:`spectral_factors`: the randomised range finder of Halko, Martinsson
  and Tropp, "Finding structure with randomness" (2011), Algorithm 4.4, its
  truncated SVD and the balanced spectral start ``U = P S½``, ``V = Q S½``.

Every function takes dense or sparse (COO or CSR) torch matrices where it
multiplies by them, draws its random numbers from the generator it is given,
and computes in the dtype and on the device of its inputs.
"""

from __future__ import annotations

import torch

__all__ = [
    "low_rank_svd",
    "masked_gram",
    "outer_products",
    "randomized_range",
    "ridge_fold_in",
    "solve_spd",
    "spectral_factors",
]


def solve_spd(G: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Solve the symmetric positive definite systems ``G[i] x[i] = B[i]``.

    Parameters
    ----------
    G : torch.Tensor of shape (..., k, k)
        Symmetric positive (semi-)definite matrices.
    B : torch.Tensor of shape (..., k)
        Right-hand sides, one vector per matrix.

    Returns
    -------
    torch.Tensor of shape (..., k)
        The solutions. When a Cholesky factorisation fails (a singular or
        numerically indefinite matrix in the batch), the whole batch is solved
        by least squares instead, which returns a minimum-norm solution of the
        singular systems rather than failing.
    """
    L, info = torch.linalg.cholesky_ex(G)
    if bool(info.any()):
        return torch.linalg.lstsq(G, B.unsqueeze(-1)).solution.squeeze(-1)
    return torch.cholesky_solve(B.unsqueeze(-1), L).squeeze(-1)


def outer_products(F: torch.Tensor) -> torch.Tensor:
    """Row-wise outer products ``f_j f_jᵀ`` of ``F`` (n, k), flattened to (n, k²)."""
    k = F.shape[1]
    return (F[:, :, None] * F[:, None, :]).reshape(F.shape[0], k * k)


def masked_gram(
    M: torch.Tensor,
    F: torch.Tensor,
    ridge: float | torch.Tensor | None = None,
    *,
    outer: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-row Gram matrices ``G_i = Σ_j M_ij f_j f_jᵀ + diag(ridge)``.

    Computed as one product ``M @ outer_products(F)`` (``M`` dense or sparse),
    so the cost is ``nnz(M) · k²`` and no ``rows x n x k`` tensor is formed.

    Parameters
    ----------
    M : torch.Tensor of shape (r, n)
        Weights (a 0/1 mask, or counts), dense or sparse.
    F : torch.Tensor of shape (n, k)
        Features of the ``n`` columns.
    ridge : float or torch.Tensor or None, default=None
        Added to the diagonals: a number, a (k,) tensor (one value per
        feature) or an (r, 1) tensor (one value per row).
    outer : torch.Tensor of shape (n, k²) or None, default=None
        ``outer_products(F)``, when the caller reuses it across blocks of rows.

    Returns
    -------
    torch.Tensor of shape (r, k, k)
    """
    k = F.shape[1]
    if outer is None:
        outer = outer_products(F)
    G = (M @ outer).reshape(-1, k, k)
    if ridge is not None:
        G.diagonal(dim1=-2, dim2=-1).add_(
            torch.as_tensor(ridge, dtype=G.dtype, device=G.device)
        )
    return G


def ridge_fold_in(
    M: torch.Tensor,
    Y: torch.Tensor,
    F: torch.Tensor,
    ridge: float | torch.Tensor,
) -> torch.Tensor:
    """Masked ridge regression of every row on the fixed features ``F``.

    Row ``i`` gets ``argmin_u Σ_j M_ij (Y_ij − u·f_j)² + ridge ‖u‖²``, i.e. the
    solution of ``(Σ_j M_ij f_j f_jᵀ + ridge I) u = Σ_j M_ij Y_ij f_j``.

    Parameters
    ----------
    M : torch.Tensor of shape (r, n)
        The 0/1 mask of the observed entries (dense or sparse).
    Y : torch.Tensor of shape (r, n)
        Targets, zero where ``M`` is zero (so that ``Y @ F`` is the masked
        right-hand side).
    F : torch.Tensor of shape (n, k)
        The basis (column factors).
    ridge : float or torch.Tensor
        As in :func:`masked_gram`; positive, so the systems are definite.

    Returns
    -------
    torch.Tensor of shape (r, k)
    """
    return solve_spd(masked_gram(M, F, ridge), Y @ F)


def randomized_range(
    A: torch.Tensor,
    At: torch.Tensor,
    q: int,
    n_power: int,
    generator: torch.Generator,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Orthonormal basis ``Q`` (m, q) of the dominant range of ``A`` (m, n).

    A Gaussian test matrix drawn from ``generator`` (on the CPU, then moved),
    ``n_power`` power iterations with re-orthonormalisation (Halko et al.,
    Algorithm 4.4). ``At`` is ``A``'s transpose, passed in because a sparse
    matrix's transpose is best built once in its own compressed layout.
    """
    dtype = A.dtype if dtype is None else dtype
    R = torch.randn(A.shape[-1], q, generator=generator, dtype=dtype).to(A.device)
    Q = torch.linalg.qr(_matmul(A, R)).Q
    for _ in range(n_power):
        Q = torch.linalg.qr(_matmul(At, Q)).Q
        Q = torch.linalg.qr(_matmul(A, Q)).Q
    return Q


def low_rank_svd(
    A: torch.Tensor,
    q: int,
    niter: int,
    generator: torch.Generator,
    At: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``torch.svd_lowrank(A, q, niter)`` with its test matrix drawn from
    ``generator``.

    Halko, Martinsson and Tropp (2011), Algorithm 4.4, as
    ``torch.svd_lowrank`` implements it (which draws from torch's process-wide
    generator): the range of the wider side is found. ``A`` may be a dense or
    sparse COO matrix; returns ``U, S, V`` with ``A ≈ U diag(S) Vᵀ``.

    ``At``, optional, is ``A.mH`` built by the caller. For a sparse COO ``A``,
    ``A.mH`` clones its indices and values (three ``nnz``-long arrays); a
    caller that has the transposed indices at hand (or builds them as one
    ``(2, nnz)`` array sharing ``A``'s values) passes them here. It must hold
    the entries in ``A``'s order (as ``A.mH`` does), so the products, and the
    result, are bit for bit those without it.
    """
    m, n = A.shape[-2:]
    if At is None:
        At = A.mH
    if m < n:
        A, At = At, A
    dtype = A.dtype if A.is_floating_point() else torch.get_default_dtype()
    Q = randomized_range(A, At, q, niter, generator, dtype)
    # dense @ sparse is computed by torch as (Aᵀ Q)ᵀ through a transposed
    # copy of A; with Aᵀ at hand that copy is not made (same products).
    B = _matmul(At, Q).mH if A.is_sparse else _matmul(Q.mH, A)
    U, S, Vh = torch.linalg.svd(B, full_matrices=False)
    U, V = Q.matmul(U), Vh.mH
    if m < n:
        U, V = V, U
    return U, S, V


def spectral_factors(
    A: torch.Tensor,
    At: torch.Tensor,
    rank: int,
    q: int,
    n_power: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Balanced factors of ``A``'s top ``rank`` singular triplets.

    With ``A ≈ P S Qᵀ`` (randomised, ``q >= rank`` test vectors), returns
    ``U = P S½`` (m, rank) and ``V = Q S½`` (n, rank), so that ``U Vᵀ`` is the
    truncated SVD and both factors have the same scale: the spectral start of
    a factorisation fitted to the rescaled zero-filled sample ``A``.
    """
    Q = randomized_range(A, At, q, n_power, generator)
    B = _matmul(At, Q).T  # q × n
    Ub, s, Vt = torch.linalg.svd(B, full_matrices=False)
    root = s[:rank].sqrt()
    return (Q @ Ub[:, :rank]) * root, Vt[:rank].T * root


def _matmul(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    return torch.sparse.mm(A, B) if A.is_sparse else torch.matmul(A, B)
