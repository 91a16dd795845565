"""Held-out choice of :class:`~sklearn_mc.SVDImputer`'s rank and ridge.

:class:`_RankSearch` grows the rank along a ladder of candidates with warm
starts and keeps the smallest rank whose held-out error is within a few per
cent of the best; :func:`_select_ridge` follows the ALS penalty path on each
fold's held-in entries and keeps the ridge (and the weight of the low-rank
part against the column means) that predicts the held-out entries best.
"""

from __future__ import annotations

import numpy as np
import torch

from ._linalg import spectral_factors
from ._progress import progress
from ._svd_als import (
    _IMPROVEMENT,
    _MIN_RESIDUAL_SHARE,
    _NEGLIGIBLE,
    _degrees_of_freedom,
    _fit_als,
    _floors,
    _sweep,
)
from ._svd_entries import _column_means, _trim_heap
from ._torch import make_generator

# Candidate ranks without an improvement of the held-out error by more than
# _IMPROVEMENT after which the rank search stops.
_RANK_PATIENCE = 2
# The chosen rank is the smallest one whose held-out error is within this
# factor of the best (the column means, rank 0, compete too).
_RANK_TOLERANCE = 1.02
# Held-out error (relative to that of the column means) below which a fit
# counts as exact: the search ends there.
_EXACT = 1e-9
# Sweeps per candidate rank of the search, at most; a candidate also stops
# when its held-out error has not improved by _SWEEP_IMPROVEMENT for
# _SWEEP_PATIENCE sweeps.
_SEARCH_SWEEPS = 30
_SWEEP_PATIENCE = 3
_SWEEP_IMPROVEMENT = 1e-3


def _select_ridge(folds, rank, center, max_iter, tol, seed):
    """Ridge floors and low-rank weight chosen on the held-out entries.

    The penalty path is followed on each fold's held-in entries from a ridge
    high enough to shrink the fit to (nearly) the column means; the ridge of
    the sweep with the best held-out error is kept (scaled to the full number
    of entries, which weighs the data more against the same ridge), ``0``
    when that sweep came after the path's end.
    """
    if not folds:
        return (0.0, 0.0), 1.0
    rows, cols, weights, exact = [], [], [], []
    for train, valid in folds:
        (r, c), w, e = _fit_als(
            train,
            rank,
            0.0,
            center,
            max_iter,
            tol,
            seed,
            0,
            valid=valid,
            start_factor=0.5,
        )
        scale = 1.0 / (1.0 - valid.nnz / (train.nnz + valid.nnz))
        rows.append(r * scale)
        cols.append(c * scale)
        weights.append(w)
        exact.append(e)
    if np.mean(exact) > 0.5:
        # Exact on the typical held-out entry (the median one): exactly low
        # rank data, whose held-out error can only rest on a few entries
        # that their fold leaves undetermined; no ridge, no shrinkage.
        return (0.0, 0.0), 1.0
    weight = float(np.mean(weights))
    if weight > 1 - 1e-3:
        weight = 1.0
    return (float(np.median(rows)), float(np.median(cols))), weight


def _ladder(max_rank):
    """Candidate ranks 1, 2, ..., 10, 12, 15, 19, 24, ...: steps of ~r/4."""
    ranks, r = [], 1
    while r <= max_rank:
        ranks.append(r)
        r += 1 if r < 10 else int(0.25 * r + 0.5)
    return ranks


class _RankSearch:
    """Held-out rank search with warm starts (see ``SVDImputer``'s ``rank``).

    Each fold keeps its current fit; a candidate rank grows it by the top
    singular vectors of its residual and runs a few ALS sweeps (ridge: the
    noise ridge), each stopped once its held-out error stalls. Errors are
    relative to the column means' (rank 0), averaged over the folds.
    """

    def __init__(self, folds, center, tol, seed, verbose):
        self.folds, self.center, self.tol = folds, center, tol
        self.seed, self.verbose = seed, verbose
        self.errors: dict[int, float] = {}
        self.exact = False
        self.reason = ""

    def _max_rank(self):
        # Only determined ranks: more parameters than held-in entries would
        # let the held-out error rest on the ridge alone.
        ranks = []
        for train, _ in self.folds:
            m, n = train.shape
            r = 0
            while (
                r < min(m, n)
                and _degrees_of_freedom(m, n, r + 1, self.center)
                <= (1 - _MIN_RESIDUAL_SHARE) * train.nnz
            ):
                r += 1
            ranks.append(r)
        return min(ranks, default=0)

    def run(self):
        if not self.folds:
            self.reason = "too few observed entries to hold any out"
            return 1 if self._max_rank() >= 1 else 0
        self.states, self.base = [], []
        for train, valid in self.folds:
            n = train.shape[1]
            c = (
                _column_means(train)
                if self.center
                else torch.zeros(n, dtype=train.dtype, device=train.device)
            )
            U = torch.zeros(train.shape[0], 0, dtype=train.dtype, device=train.device)
            V = torch.zeros(n, 0, dtype=train.dtype, device=train.device)
            e0 = _held_out_error(valid.residual(U, V, c).square(), len(self.folds) > 1)
            self.base.append(max(e0, 1e-300))
            self.states.append((U, V, c))
        self.errors[0] = 1.0
        saved = {0: self.states}
        max_rank = self._max_rank()
        ladder = _ladder(max_rank)
        bar = progress(len(ladder), self.verbose, "SVDImputer rank search")
        best, since_best = 1.0, 0
        for rank in ladder:
            error = self._evaluate(rank)
            saved[rank] = self.states
            bar.set_postfix(rank=rank, held_out=f"{error:.2e}", refresh=False)
            bar.update(1)
            if error <= _EXACT:
                self.exact = True
                break
            since_best = 0 if error < best * (1 - _IMPROVEMENT) else since_best + 1
            best = min(best, error)
            if since_best >= _RANK_PATIENCE:
                break
        bar.close()
        best = min(self.errors.values())

        def good(r):
            if self.exact:
                return self.errors[r] <= _EXACT
            return self.errors[r] <= _RANK_TOLERANCE * best + _NEGLIGIBLE

        chosen = min(r for r in self.errors if good(r))
        below = max(r for r in self.errors if r < chosen) if chosen else 0
        # Ranks the ladder stepped over: truncate the chosen fit and refit.
        self.states = saved[chosen]
        while chosen - 1 > below:
            self.states = [_truncate(U, V, c, chosen - 1) for U, V, c in self.states]
            self._evaluate(chosen - 1, grow=False)
            if not good(chosen - 1):
                break
            chosen -= 1
        self.states = saved = None
        top = min(self.errors, key=self.errors.get)
        if self.exact:
            self.reason = f"exact fit of the held-out entries from rank {chosen}"
        elif max_rank == 0:
            self.reason = "no rank has fewer parameters than held-in entries"
        else:
            self.reason = (
                "smallest rank within 2 % of the best held-out error (rank "
                f"{top}: {self.errors[top]:.3g} of the column means' error)"
            )
        return chosen

    def _evaluate(self, rank, grow=True):
        """Mean held-out error of ``rank`` relative to the column means'.

        Returns at most ``_EXACT`` when the fit is exact on the typical
        held-out entry (the median squared error is negligible): near the
        information limit a few held-out entries sit in rows or columns with
        too few held-in ones to be determined, and they must not hide an exact
        fit of the rest.
        """
        errors, medians, states = [], [], []
        for (train, valid), (U, V, c), e0 in zip(
            self.folds, self.states, self.base, strict=True
        ):
            if grow:
                U, V = _grow(train, U, V, c, rank, self.seed)
            U, V, c = self._sweeps(train, valid, U, V, c)
            squares = valid.residual(U, V, c).square()
            errors.append(_held_out_error(squares, len(self.folds) > 1) / e0)
            medians.append(float(squares.median()) / e0)
            states.append((U, V, c))
        self.states = states
        # Several folds (small data): their median, for the same reason as
        # the trimmed mean within each.
        error = float(np.median(errors) if len(errors) > 1 else errors[0])
        if float(np.median(medians)) <= _NEGLIGIBLE:
            error = min(error, _EXACT)
        self.errors[rank] = error
        return error

    def _sweeps(self, train, valid, U, V, c):
        rank = V.shape[1]
        # The noise ridge of the warm start, then only ever falling (as in
        # _fit_als after its path).
        residual = train.residual(U, V, c)
        floor_rows, floor_cols = _floors(0.0, residual, U, V, rank, self.center)
        best, since = np.inf, 0
        exact = _EXACT * float(valid.values.square().mean())
        small = len(self.folds) > 1
        for _ in range(_SEARCH_SWEEPS * (4 if small else 1)):
            del residual  # not held through the next sweep: nnz values less
            U, V, c = _sweep(train, U, V, c, floor_rows, floor_cols, self.center)
            residual = train.residual(U, V, c)
            noise_rows, noise_cols = _floors(0.0, residual, U, V, rank, self.center)
            floor_rows = min(floor_rows, noise_rows)
            floor_cols = min(floor_cols, noise_cols)
            error = float(valid.residual(U, V, c).square().mean())
            since = 0 if error < best * (1 - _SWEEP_IMPROVEMENT) else since + 1
            if error < best:
                best, state = error, (U, V, c)
            if since >= _SWEEP_PATIENCE * (3 if small else 1) or error <= exact:
                break
        return state


def _held_out_error(squares, robust):
    """Mean squared held-out error; on small data without its top tenth.

    With a few dozen held-out entries, one entry in a row left with too few
    held-in entries to determine its factor can dominate the mean and decide
    the rank by chance (a 30 x 4 table of rank 2 picked rank 1 for 16 % of
    the seeds); the trimmed mean keeps the comparison to the typical entry.
    """
    if not robust or squares.numel() < 10:
        return float(squares.mean())
    keep = squares.numel() - squares.numel() // 10
    return float(torch.sort(squares).values[:keep].mean())


def _grow(entries, U, V, c, rank, seed):
    """Add ``rank - U.shape[1]`` components: top singular pairs of the residual."""
    extra = rank - U.shape[1]
    if extra <= 0:
        return U, V
    m, n = entries.shape
    # Rescaled by the sampling rate, like the spectral start, so that the new
    # components have the size of the signal they stand for.
    residual = entries.residual(U, V, c).mul_(m * n / entries.nnz)
    R = entries.matrix(residual)
    Rt = entries.matrix(residual, transpose=True)
    del residual
    q = min(extra + 5, m, n)
    U_new, V_new = spectral_factors(R, Rt, extra, q, 2, make_generator(seed + rank))
    del R, Rt
    _trim_heap(entries.nnz)  # the residual's pages, before the sweeps
    return torch.cat([U, U_new], 1), torch.cat([V, V_new], 1).contiguous()


def _truncate(U, V, c, rank):
    """The best rank-``rank`` part of ``U Vᵀ`` (balanced factors)."""
    Qu, Ru = torch.linalg.qr(U)
    Qv, Rv = torch.linalg.qr(V)
    A, s, Wt = torch.linalg.svd(Ru @ Rv.T)
    root = s[:rank].sqrt()
    return (Qu @ A[:, :rank]) * root, (Qv @ Wt[:rank].T) * root, c
