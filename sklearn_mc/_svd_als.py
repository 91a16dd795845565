"""Alternating ridge regressions on the observed entries (softImpute-ALS).

Hastie, Mazumder, Lee and Zadeh, "Matrix completion and low-rank SVD via fast
alternating least squares" (2015): with ``V`` fixed every row factor is a
ridge regression on the row's observed entries, then every column factor
(and offset) with ``U`` fixed. The ridge follows the SoftImpute penalty path
(Mazumder, Hastie and Tibshirani, "Spectral regularization algorithms for
learning large incomplete matrices", 2010) down to its floor: ``shrinkage``,
a ridge chosen on held-out entries, or the noise ridge of probabilistic
matrix factorisation (Salakhutdinov and Mnih, 2008).
"""

from __future__ import annotations

import numpy as np
import torch

from ._linalg import masked_gram, outer_products, solve_spd, spectral_factors
from ._progress import progress
from ._svd_entries import _column_means, _csr, _row_blocks, _trim_heap
from ._torch import make_generator

# Relative ridge that keeps every least-squares solve well posed (rows with
# fewer observations than the rank) without biasing an exact low-rank fit.
_EPS_RIDGE = 1e-10
# The noise is only estimated once the path's penalty has fallen by this
# factor: before, the residual measures the path's bias, not the noise.
_PATH_END = 1e-6
# Share of the observations beyond the fit's parameter count that is needed
# to estimate the noise level from the residual (else no noise ridge).
_MIN_RESIDUAL_SHARE = 0.1
_IMPROVEMENT = 0.01
# Relative held-out errors this small count as equally good (indistinguishable
# from an exact fit) when the smallest good rank is chosen.
_NEGLIGIBLE = 1e-6
# The ridge-selection fit stops after _RIDGE_PATIENCE sweeps without a
# held-out improvement by _SWEEP_IMPROVEMENT once the path is over (or the
# error is 5 % above its best), and after a plateau as long as the path takes
# to lower the ridge by _PLATEAU_DECADES decades otherwise: a flat held-out
# error over a decade of ridges says the ridge no longer matters.
_RIDGE_PATIENCE = 5
_PLATEAU_DECADES = 1.0
# A fit has converged when its fitted values change by less than this share
# of the residual (the noise level) between sweeps, or by ``tol`` relatively.
_NOISE_TOL = 1e-4
# Floats per block of the batched Gram matrices (bounds their memory to
# 8 MB in float64 whatever the number of rows).
_BLOCK = 2**20


def _ridge(shrinkage, V):
    scale = float(V.square().sum()) / max(V.shape[0], 1)
    return shrinkage + _EPS_RIDGE * max(scale, 1e-12)


def _solve_side(entries, transpose, F, rhs, ridge, n_free=None):
    """Ridge solves of every row (or column) against features ``F``.

    ``rhs`` holds ``Σ_j x_ij f_j`` per row; the Gram matrices
    (:func:`~sklearn_mc._linalg.masked_gram` of the sparsity pattern) are
    built and solved (:func:`~sklearn_mc._linalg.solve_spd`) in blocks of
    rows so that they never exceed ``_BLOCK`` floats and each block's pattern
    has at most ``_CHUNK`` entries (a row with more is a block of its own).
    The ridge is ``ridge`` on the first ``n_free`` features and ``_EPS_RIDGE``
    on the others (the column offsets).
    """
    k = F.shape[1]
    ptr, index, (size, other) = entries.side(transpose)
    outer = outer_products(F)
    diag = torch.full((k,), ridge, dtype=F.dtype, device=F.device)
    if n_free is not None:
        diag[n_free:] = _EPS_RIDGE
    blocks = _row_blocks(ptr, size, max(1, _BLOCK // max(k * k, 1)))
    if len(blocks) == 1:
        S = _csr(ptr, index, _ones(entries.nnz, F), (size, other))
        return solve_spd(masked_gram(S, F, diag, outer=outer), rhs)
    out = torch.empty(size, k, dtype=F.dtype, device=F.device)
    for start, stop in blocks:
        lo, hi = int(ptr[start]), int(ptr[stop])
        S = _csr(
            ptr[start : stop + 1] - lo,
            index[lo:hi],
            _ones(hi - lo, F),
            (stop - start, other),
        )
        out[start:stop] = solve_spd(
            masked_gram(S, F, diag, outer=outer), rhs[start:stop]
        )
        del S
    return out


def _ones(size, like):
    return torch.ones(size, dtype=like.dtype, device=like.device)


def _sweep(entries, U, V, c, ridge_rows, ridge_cols, center):
    """One ALS sweep: rows given columns, then columns (and offsets) given rows.

    Holds at most one array of ``nnz`` values beside the entries (the
    centred values, then the column-major values).
    """
    rank = V.shape[1]
    R = entries.matrix(entries.centred(c))
    rhs = R @ V
    del R
    _trim_heap(entries.nnz)
    U = _solve_side(entries, False, V, rhs, ridge_rows)
    if center:
        ones = torch.ones(U.shape[0], 1, dtype=U.dtype, device=U.device)
        F = torch.cat([U, ones], 1)
    else:
        F = U
    X_cols = entries.matrix(entries.values, transpose=True)
    rhs = X_cols @ F
    del X_cols
    _trim_heap(entries.nnz)
    W = _solve_side(entries, True, F, rhs, ridge_cols, n_free=rank)
    V = W[:, :rank]
    if center:
        c = W[:, rank].contiguous()
    # The sweep's entry-sized temporaries are freed: return their pages, or
    # the C allocator's retention grows the peak from sweep to sweep.
    _trim_heap(entries.nnz)
    return U, V.contiguous(), c


def _init_factors(entries, rank, center, seed):
    """Spectral start: top singular vectors of the rescaled zero-filled matrix."""
    m, n = entries.shape
    device, dtype = entries.device, entries.dtype
    c = _column_means(entries) if center else torch.zeros(n, dtype=dtype, device=device)
    p = entries.nnz / (m * n)
    centred = entries.centred(c).div_(p)
    S = entries.matrix(centred)
    St = entries.matrix(centred, transpose=True)
    del centred
    # Randomised range finder with a few power iterations (sparse products).
    q = min(rank + 10, m, n)
    U, V = spectral_factors(S, St, rank, q, 4, make_generator(seed))
    return U, V, c


def _degrees_of_freedom(m, n, rank, center):
    """Free parameters of a rank-``rank`` ``m x n`` fit (plus ``n`` offsets)."""
    return rank * (m + n - rank) + (n if center else 0)


def _path_decay(entries, rank):
    """Per-sweep decay of the ridge path, slower the fewer samples per unknown.

    Near the information limit (observed entries / degrees of freedom of a
    rank-``rank`` matrix close to 1) plain ALS stalls in a bad region; warm
    starts along a slowly decreasing penalty (the SoftImpute path of Mazumder
    et al.) reach the exact solution. Well-sampled problems need no path, so
    the decay is fast there.
    """
    m, n = entries.shape
    oversampling = entries.nnz / max(_degrees_of_freedom(m, n, rank, False), 1)
    return float(np.clip(1.0 - 0.15 * (oversampling - 1.0), 0.3, 0.9))


def _fit_als(
    entries,
    rank,
    shrinkage,
    center,
    max_iter,
    tol,
    seed,
    verbose,
    floors=(0.0, 0.0),
    valid=None,
    start_factor=0.01,
):
    """Alternating ridge regressions on the observed entries (softImpute-ALS).

    The ridge starts at ``start_factor`` times the largest squared factor
    norms of the spectral start and decays geometrically to its floor;
    convergence is only tested once it has arrived there. The floor is
    ``shrinkage`` when given; otherwise it is the larger of ``floors``
    (a ridge chosen on held-out entries) and the noise ridge of
    :func:`_noise_ridges`, which vanishes on exactly low-rank data.

    With ``valid`` (held-out entries) the error on them is recorded at every
    sweep; the fit stops after ``_RIDGE_PATIENCE`` sweeps without a better
    held-out error after the path's end (or 5 % above the best), or when it
    has not improved while the path lowered the ridge by a decade (once the
    held-out error is below the column means'), and the return value is
    ``(best_ridges, best_weight, exact)``: the ridges of the best sweep
    (``(0, 0)`` when it came after the path's end), the least-squares
    weight of the low-rank model against the column means there, and whether
    the median held-out entry was ever fitted exactly.
    """
    U, V, c = _init_factors(entries, rank, center, seed)
    reference = 0.01 * float(U.square().sum(1).max() + V.square().sum(1).max())
    penalty = reference * start_factor / 0.01
    decay = _path_decay(entries, rank)
    floor = _Floors(shrinkage, floors, U, V)
    previous = None
    n_iter, losses, converged = 0, [], False
    held_out = None if valid is None else _HeldOutPath(entries, valid, decay)
    show = bool(verbose) and valid is None
    bar = progress(max_iter, verbose if show else 0, "SVDImputer (als)")
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is returned
        penalty = penalty * decay
        ridge_rows = max(penalty, floor.rows)
        ridge_cols = max(penalty, floor.cols)
        U, V, c = _sweep(entries, U, V, c, ridge_rows, ridge_cols, center)
        fitted = entries.fitted(U, V, c)
        # At most two arrays of nnz values at a time: the previous sweep's
        # fitted values are released once the step is measured.
        step = None
        if previous is not None:
            step = float(previous.sub_(fitted).norm())
        previous = None
        size = float(fitted.norm().clamp(min=1e-300))
        residual = torch.sub(entries.values, fitted)
        floor.update(residual, U, V, center, penalty <= _PATH_END * reference)
        residual_norm = float(residual.norm())
        del residual
        losses.append(residual_norm**2 / max(entries.nnz, 1))
        if step is None:
            change = np.inf
        else:
            change = step / size
            if step < _NOISE_TOL * residual_norm:
                change = min(change, 0.0)
        previous = fitted
        path_over = penalty <= floor.rows
        if held_out is not None and held_out.done(
            U, V, c, (ridge_rows, ridge_cols), path_over
        ):
            break
        if show:
            bar.set_postfix(
                change=f"{change:.2e}", ridge=f"{ridge_rows:.1e}", refresh=False
            )
            bar.update(1)
        if path_over and change < tol:
            converged = True
            break
    bar.close()
    if held_out is not None:
        return held_out.result()
    return U, V, c, n_iter, losses, converged


class _Floors:
    """The smallest ridges of the row and column solves of :func:`_fit_als`.

    ``shrinkage`` when given (scaled to the factors); otherwise the larger of
    the ``given`` floors (chosen on held-out entries) and the noise ridges of
    :func:`_noise_ridges`. Those are estimated once the path is over (before,
    the residual measures the path's bias) and only ever fall: a rising floor
    could shrink the factors, inflate the residual and rise again until the
    fit collapses to zero.
    """

    def __init__(self, shrinkage, given, U, V):
        self.shrinkage, self.given = shrinkage, given
        self.rows = max(_ridge(shrinkage, V), given[0])
        self.cols = max(_ridge(shrinkage, U), given[1])
        self.noise_rows = self.noise_cols = np.inf

    def update(self, residual, U, V, center, path_over):
        rank = V.shape[1]
        if self.shrinkage > 0:
            self.rows, self.cols = _floors(self.shrinkage, residual, U, V, rank, center)
        elif path_over:
            rows_now, cols_now = _floors(0.0, residual, U, V, rank, center)
            self.noise_rows = min(self.noise_rows, rows_now)
            self.noise_cols = min(self.noise_cols, cols_now)
            self.rows = max(self.noise_rows, self.given[0])
            self.cols = max(self.noise_cols, self.given[1])


class _HeldOutPath:
    """The held-out error along the penalty path of a ridge-selection fit.

    At every sweep the error of the fit on the held-out entries ``valid``
    (relative to the column means of the held-in ``entries``) is recorded;
    the ridges of the best sweep (``(0, 0)`` once the path is over) and the
    least-squares weight of the low-rank part there are kept.
    """

    def __init__(self, entries, valid, decay):
        self.valid = valid
        self.means = _column_means(entries)
        self.target = valid.values - self.means[valid.cols]
        self.base = max(float(self.target.square().mean()), 1e-300)
        self.best = (np.inf, (0.0, 0.0), 1.0)
        self.since_best, self.worse, self.exact = 0, 0, False
        self.plateau = max(
            _RIDGE_PATIENCE,
            int(np.ceil(_PLATEAU_DECADES * np.log(10.0) / -np.log(decay))),
        )

    def done(self, U, V, c, ridges, path_over) -> bool:
        """Record this sweep; True when the selection fit should stop."""
        pred = self.valid.fitted(U, V, c) - self.means[self.valid.cols]
        squares = (self.target - pred).square()
        error = float(squares.mean())
        self.exact = self.exact or float(squares.median()) <= _NEGLIGIBLE * self.base
        if error < self.best[0] * (1 - 1e-9):
            kept = (0.0, 0.0) if path_over else ridges
            denom = float(pred.square().sum())
            weight = float(self.target @ pred) / denom if denom > 0 else 0.0
            self.best = (error, kept, float(np.clip(weight, 0.0, 1.0)))
            self.since_best = self.worse = 0
        else:
            self.since_best += 1
            if path_over or error > 1.05 * self.best[0]:
                self.worse += 1
        # A flat held-out error over a decade of ridges (once the low-rank
        # part predicts the held-out entries at all: before, a flat error may
        # only mean that their rows or columns have not been reached yet)
        # says the ridge no longer matters.
        flat = (
            self.since_best >= self.plateau
            and self.best[0] < (1 - _IMPROVEMENT) * self.base
        )
        return self.worse >= _RIDGE_PATIENCE or flat or self.exact

    def result(self):
        """``(best_ridges, best_weight, exact)``."""
        return self.best[1], self.best[2], self.exact


def _floors(shrinkage, residual, U, V, rank, center):
    """Smallest ridges of the next row and column solves."""
    if shrinkage > 0:
        return _ridge(shrinkage, V), _ridge(shrinkage, U)
    noise_rows, noise_cols = _noise_ridges(residual, U, V, rank, center)
    return max(noise_rows, _ridge(0.0, V)), max(noise_cols, _ridge(0.0, U))


def _noise_ridges(residual, U, V, rank, center):
    """Ridges ``σ²/τ²`` of probabilistic matrix factorisation, estimated.

    With noise ``x_ij = u_i·v_j + ε``, ``ε ~ N(0, σ²)``, and Gaussian factors
    ``u_i ~ N(0, τ_u² I)``, the MAP row solve has ridge ``σ²/τ_u²``
    (Salakhutdinov & Mnih, 2008); ``σ²`` is the mean squared residual (not
    corrected for the fit's degrees of freedom: near the information limit
    that correction inflates it and stalls recovery), ``τ²`` the mean squared
    factor entry. On
    exactly low-rank data the residual, and with it the ridge, goes to zero
    (exact recovery is kept); on noisy data it keeps rows and columns with
    few or ill-placed observations from fitting the noise.
    """
    m, n = U.shape[0], V.shape[0]
    spare = residual.numel() - _degrees_of_freedom(m, n, rank, center)
    if spare < max(_MIN_RESIDUAL_SHARE * residual.numel(), m + n):
        # (Nearly) as many parameters as observations: the fit (almost)
        # interpolates, and the noise cannot be estimated from its residual.
        return 0.0, 0.0
    sigma2 = float(residual.square().mean())
    tau2_u = float(U.square().mean())
    tau2_v = float(V.square().mean())
    if tau2_u <= 0 or tau2_v <= 0:
        return 0.0, 0.0
    return sigma2 / tau2_u, sigma2 / tau2_v
