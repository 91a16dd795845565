"""Iterative SVD imputation: SVDimpute, SoftImpute and their fast ALS form."""

from __future__ import annotations

import math
import numbers
import sys
import time
import warnings

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseMatrixImputer, warn_user
from ._linalg import masked_gram, ridge_fold_in, solve_spd, spectral_factors
from ._optim import History, progress, warn_not_converged
from ._torch import (
    compute_dtype,
    low_rank_svd,
    make_generator,
    seed_from,
    to_numpy,
    to_tensor,
)
from .model_selection import split_indices

# Relative ridge that keeps every least-squares solve well posed (rows with
# fewer observations than the rank) without biasing an exact low-rank fit.
_EPS_RIDGE = 1e-10
# The noise is only estimated once the path's penalty has fallen by this
# factor: before, the residual measures the path's bias, not the noise.
_PATH_END = 1e-6
# Share of the observations beyond the fit's parameter count that is needed
# to estimate the noise level from the residual (else no noise ridge).
_MIN_RESIDUAL_SHARE = 0.1
# Share of the observed entries held out to choose the rank and the ridge.
_VALIDATION_FRACTION = 0.1
# Below this many observed entries the held-out error is averaged over
# _N_FOLDS disjoint held-out sets (one set of a few dozen entries is too noisy
# to choose a rank by).
_SMALL_NNZ = 2_000
_N_FOLDS = 5
# Candidate ranks without an improvement of the held-out error by more than
# _IMPROVEMENT after which the rank search stops.
_RANK_PATIENCE = 2
_IMPROVEMENT = 0.01
# The chosen rank is the smallest one whose held-out error is within this
# factor of the best (the column means, rank 0, compete too).
_RANK_TOLERANCE = 1.02
# Held-out error (relative to that of the column means) below which a fit
# counts as exact: the search ends there.
_EXACT = 1e-9
# Relative held-out errors this small count as equally good (indistinguishable
# from an exact fit) when the smallest good rank is chosen.
_NEGLIGIBLE = 1e-6
# Sweeps per candidate rank of the search, at most; a candidate also stops
# when its held-out error has not improved by _SWEEP_IMPROVEMENT for
# _SWEEP_PATIENCE sweeps.
_SEARCH_SWEEPS = 30
_SWEEP_PATIENCE = 3
_SWEEP_IMPROVEMENT = 1e-3
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
# The low-rank part's weight (shrinkage toward the column means) below which
# the fit warns that the low-rank model does not help.
_WEAK_WEIGHT = 0.5


class SVDImputer(BaseMatrixImputer):
    """Complete a matrix by iterative low-rank SVD (SVDimpute / SoftImpute).

    The model is ``X ≈ U Vᵀ + c`` with column offsets ``c``. Two solvers fit it:

    ``"als"`` (default)
        Alternating ridge regressions on the observed entries only
        (softImpute-ALS, Hastie et al. 2015). Memory and time per sweep grow
        with the number of observed entries times ``rank²``, never with
        ``n_samples × n_features``; this is the fast path for large, low-rank
        problems, and the one that accepts :mod:`scipy.sparse` input.
    ``"svd"``
        The classical loop of Troyanskaya et al. (2001): fill the holes with
        column means, take a rank-``rank`` SVD of the filled matrix
        (``torch.svd_lowrank`` when the rank is small against the matrix),
        refill the holes with the reconstruction, repeat. Dense: memory
        ``O(n_samples × n_features)``.

    With ``shrinkage > 0`` the singular values are soft-thresholded by
    ``shrinkage`` (SoftImpute, Mazumder, Hastie & Tibshirani 2010); in the ALS
    solver this is the equivalent ridge penalty ``shrinkage/2 (‖U‖² + ‖V‖²)``.

    Sparse input: for a :mod:`scipy.sparse` matrix, stored entries are the
    observed ones (an explicitly stored 0 is a rating of 0) and absent entries
    are unknown, the recommender convention. This differs from
    scikit-learn's imputers, which read implicit zeros as zeros. Dense input
    (NaN = missing) is fitted through the same observed-entries path, so a
    dense matrix and its sparse equivalent give the same completion.

    Parameters
    ----------
    rank : int or "auto", default="auto"
        Rank of the fit. ``"auto"`` holds out 10 % of the observed entries
        (five disjoint tenths, averaged, below 2,000 observed entries) and
        grows the rank 0, 1, 2, ... (steps of about a quarter of the rank
        beyond 10), warm-starting each candidate from the previous one, until
        the held-out error is exact or has not improved by 1 % for two
        candidates; it picks the smallest rank within 2 % of the best. Rank 0
        is the column means. Ranks with more parameters than held-in entries
        are not tried.
    shrinkage : float, default=0.0
        Soft threshold on the singular values (nuclear-norm weight), in the
        units of the scaled ``X`` (see ``scaling``). 0 chooses the ridge from
        the data (see Notes): none on exactly low-rank data, enough on noisy
        data to keep the fit from fitting the noise.
    solver : {"auto", "als", "svd"}, default="auto"
        ``"auto"`` uses ``"als"``.
    center : bool, default=True
        Fit column offsets ``c`` (the columns' means, refined jointly), which
        helps tabular data whose columns are not centred.
    scaling : {"standard", "none"}, default="standard"
        ``"standard"`` fits the model to the columns standardised by their
        observed mean and standard deviation (and maps the completion back),
        so that columns in large units do not dominate the fit of the others;
        a column scaling keeps the rank, so an exactly low-rank matrix is
        still recovered exactly. ``"none"`` fits ``X`` in its own units (the
        plain truncated SVD / SoftImpute of ``X``; ``shrinkage`` is then in
        the units of ``X``, otherwise in standard deviations).
    max_iter : int, default=500
        Maximum number of sweeps (ALS) or SVD refills.
    tol : float, default=1e-7
        Stop when the relative change of the fitted values between two
        sweeps falls below ``tol``, or (ALS) below ``1e-4`` of the residual,
        whichever comes first: on noisy data the fit stops once it moves by
        much less than the noise.
    missing_values : float, default=np.nan
        Marker of the missing entries.
    keep_empty_features : bool, default=False
        Keep all-missing columns in the output (filled with 0) instead of
        dropping them, like scikit-learn's imputers.
    add_indicator : bool, default=False
        Append a :class:`~sklearn.impute.MissingIndicator` block (a 0/1
        column for each column with missing entries at fit), as
        scikit-learn's imputers do; its names are in
        ``get_feature_names_out()``.
    min_value : float or array-like of shape (n_features,), default=-np.inf
        Lower bound of the imputed values (observed entries are never
        changed); an array gives one bound per column, as in
        :class:`~sklearn.impute.IterativeImputer`.
    max_value : float or array-like of shape (n_features,), default=np.inf
        Upper bound of the imputed values.
    device : str, default="auto"
        Torch device: "auto", "cpu", "cuda", "cuda:N" or "mps".
    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation and of the held-out split.
    verbose : int, default=0
        Show progress bars over the rank search and the sweeps, and print the
        chosen rank, ridge and the reason.

    Attributes
    ----------
    rank_ : int
        Rank used for the final fit (0: the column means).
    rank_scores_ : dict
        With ``rank="auto"``: held-out mean squared error of each rank tried,
        relative to that of the column means (rank 0).
    components_ : ndarray of shape (rank_, n_valid_features)
        Right factor ``Vᵀ`` (rows scaled by the square roots of the singular
        values) that :meth:`transform` folds new rows into.
    offsets_ : ndarray of shape (n_valid_features,)
        Column offsets ``c``. Like ``components_`` and ``singular_values_``,
        in the units the model is fitted in: standard deviations from the
        columns' observed means with ``scaling="standard"``.
    singular_values_ : ndarray of shape (rank_,)
        Singular values of the fitted low-rank part ``U Vᵀ``.
    low_rank_weight_ : float
        Weight ``w`` in ``[0, 1]`` of the low-rank model against the column
        means, chosen on the held-out entries: the completion is
        ``m + w (U Vᵀ + c − m)`` with ``m`` the column means (1 unless the
        held-out error says the low-rank model overshoots; a warning is given
        below 0.5).
    ridge_ : float
        Smallest ridge of the final fit's row solves, chosen on the held-out
        entries (0 when the end of the penalty path was best).
    n_iter_ : int
        Sweeps (or SVD refills) run in the final fit.
    best_iter_ : int
        Sweep whose state is kept: the last one (``n_iter_``).
    stop_reason_ : {"converged", "max_iter"}
        Why the final fit ended.
    loss_curve_ : list of float
        Mean squared residual on the observed entries (scaled units) after
        each sweep of the final fit.
    validation_loss_curve_ : list of float
        Empty: the final fit has no held-out entries (the rank search and the
        ridge selection, which have, are summarised by ``rank_scores_`` and
        ``ridge_``).
    history_ : History
        The record these attributes come from, as for the gradient-trained
        methods.
    fold_in_ridge_ : float
        Ridge penalty with which :meth:`transform` folds rows in.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X is a DataFrame.

    Notes
    -----
    With ``shrinkage=0`` the ALS solver follows a penalty path (the ridge
    starts high and decays geometrically, the warm starts of SoftImpute) on
    90 % of the observed entries and records the error on the other 10 % at
    every step. The final fit on all entries follows the same path and
    stops it at the held-out-best ridge; when the end of the path was best,
    it ends at the ridge of probabilistic matrix factorisation, ``σ²/τ²``
    (noise variance over factor variance, Salakhutdinov & Mnih 2008),
    estimated from the residual and the factors. On exactly low-rank data the
    held-out error falls along the whole path and the residual vanishes, so
    the ridge vanishes too (exact recovery); on noisy data, or with a rank
    larger than the data support, the held-out-best ridge keeps the fit from
    fitting the noise. The completion is finally shrunk toward the column
    means by the held-out least-squares weight ``low_rank_weight_`` (with a
    warning when the low-rank model barely helps), so that it is not worse
    than mean imputation beyond the noise of the held-out estimate.
    ``solver="svd"`` is the classical hard rank-``rank`` loop without these.

    ``transform`` folds each row in: it solves the ridge problem
    ``min_u ‖x_O − (u Vᵀ + c)_O‖² + λ‖u‖²`` over the row's observed entries
    ``O`` with ``V`` fixed (``λ = fold_in_ridge_``: ``shrinkage``, or the
    fit's ridge), so rows are completed independently and new rows need no
    refit.

    Memory (ALS): ``O(nnz + (n_samples + n_features) rank²)`` for ``nnz``
    observed entries; no ``n_samples × n_features`` array is formed except
    the dense output of ``fit_transform``/``transform``. One layout of the
    entries (20 bytes each: values, int32 column index, column-major order and
    row index) is held at a time, the held-out split's during the rank search
    and the ridge selection, then all entries' in the final fit, with at most
    two or three arrays of one value per entry beside it in a sweep; the
    batched solves and element-wise passes work in blocks of at most 8 MB.
    Measured bound: on dense 100,000 × 50 input with 20 % missing (38 MB),
    ``fit_transform`` peaks at 530 MB above the process's memory before it,
    13.9 × the input (``benchmarks/bench_svd.py --memory``; it was 24-25 ×),
    of which the base class's copies of the input (its observed entries, the
    scaled input) are about 4 ×.
    Time per sweep ``O(nnz rank² + (n_samples + n_features) rank³)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mc import SVDImputer
    >>> from sklearn_mc.datasets import make_low_rank
    >>> X = make_low_rank(60, 30, 2, random_state=0)
    >>> X_missing = X.copy()
    >>> X_missing[np.random.RandomState(0).rand(*X.shape) < 0.3] = np.nan
    >>> X_filled = SVDImputer(rank=2, random_state=0).fit_transform(X_missing)
    >>> bool(np.abs(X_filled - X).max() < 1e-4)
    True
    """

    _cli_name = "svd"
    _summary = "iterative truncated SVD / SoftImpute (fast, needs a rank or picks one)"
    _supports_sparse = True

    _parameter_constraints: dict = {
        **BaseMatrixImputer._parameter_constraints,
        "rank": [
            Interval(numbers.Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "shrinkage": [Interval(numbers.Real, 0, None, closed="left")],
        "solver": [StrOptions({"auto", "als", "svd"})],
        "center": ["boolean"],
        "scaling": [StrOptions({"standard", "none"})],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        rank="auto",
        shrinkage=0.0,
        solver="auto",
        center=True,
        scaling="standard",
        max_iter=500,
        tol=1e-7,
        missing_values=np.nan,
        keep_empty_features=False,
        add_indicator=False,
        min_value=-np.inf,
        max_value=np.inf,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.rank = rank
        self.shrinkage = shrinkage
        self.solver = solver
        self.center = center
        self.scaling = scaling
        self.max_iter = max_iter
        self.tol = tol
        self.missing_values = missing_values
        self.keep_empty_features = keep_empty_features
        self.add_indicator = add_indicator
        self.min_value = min_value
        self.max_value = max_value
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    @property
    def _scaling(self) -> str:
        # Read by the base class; a parameter so that raw units stay available.
        return self.scaling

    # ------------------------------------------------------------------ fit
    #: the base hands ``_fit`` the scaled observed entries (scaled before the
    #: fit context flushes denormals), the same as the sparse path's.
    _dense_fit_from_entries = True

    def _fit(self, entries, mask):
        # Dense input takes the sparse route, so both give the same fit.
        self._fit_core(entries.rows, entries.cols, entries.values, entries.shape)
        return self._dense_completion()

    def _fit_entries(self, entries):
        self._fit_core(entries.rows, entries.cols, entries.values, entries.shape)

    def _fit_core(self, rows, cols, values, shape):
        """Fit on observed entries (scaled units, valid columns only).

        One layout of the entries at a time: the held-out folds for the rank
        search and the ridge selection, then all entries for the final fit.
        """
        device = self._device
        dtype = compute_dtype(device)
        seed = seed_from(self.random_state)
        rows, cols, values = _row_major(
            np.asarray(rows), np.asarray(cols), np.asarray(values)
        )
        nnz = int(values.size)
        complete = nnz == shape[0] * shape[1]
        max_rank = min(shape)
        solver = "als" if self.solver == "auto" else self.solver
        # The ridge is chosen on held-out entries when none is given; a fully
        # observed matrix keeps the plain truncated SVD (Eckart-Young).
        tune = solver == "als" and self.shrinkage == 0 and not complete
        folds = []
        if self.rank == "auto" or tune:
            folds = _folds(rows, cols, values, shape, device, dtype, seed)
        search = None
        if self.rank == "auto":
            search = _RankSearch(folds, self.center, self.tol, seed, self.verbose)
            rank = search.run()
            self.rank_scores_ = dict(search.errors)
        else:
            rank = min(self.rank, max_rank)
            if rank < self.rank:
                warn_user(
                    f"rank={self.rank} exceeds min(n_samples, n_features)={max_rank};"
                    f" using rank={rank}."
                )
            _warn_if_underdetermined(shape, nnz, rank, self.center, self.shrinkage)
        self.rank_ = rank
        floors, weight = (0.0, 0.0), 1.0
        if rank > 0 and tune and not (search is not None and search.exact):
            # Exactly low-rank data need no ridge; otherwise choose it, and
            # the weight of the low-rank part, on held-out entries.
            floors, weight = _select_ridge(
                folds, rank, self.center, self.max_iter, self.tol, seed
            )
        # The held-out splits are not needed any more: free them before the
        # final fit's layout of all entries is built.
        folds = None
        if search is not None:
            search.folds = None
        _trim_heap(nnz)
        entries = _Entries(rows, cols, values, shape, device, dtype)
        del rows, cols, values
        means = _column_means(entries)
        self.column_means_ = to_numpy(means)
        if rank == 0:
            self._store_constant(entries, means)
            self._report(search, 0.0, 0.0)
            return
        fit = _fit_als if solver == "als" else _fit_svd
        args = (
            self.shrinkage,
            self.center,
            self.max_iter,
            self.tol,
            seed,
            self.verbose,
        )
        start = time.perf_counter()
        U, V, offsets, n_iter, losses, converged = fit(
            entries, rank, *args, floors=floors
        )
        self._export_history(n_iter, losses, converged, time.perf_counter() - start)
        if not converged:
            # scikit-learn's rule: a final fit that used every iteration may
            # not have converged (the rank search's fits do not warn).
            warn_not_converged("SVDImputer", self.max_iter, self.tol)
        self.low_rank_weight_ = weight
        self.ridge_ = float(floors[0])
        U_bal = self._store_factors(U, V, offsets)
        V_bal = torch.as_tensor(self.components_.T, device=device, dtype=dtype)
        residual = entries.residual(U_bal, V_bal, offsets)
        # New rows are folded in with the same ridge the fit's rows had.
        ridge = _floors(self.shrinkage, residual, U_bal, V_bal, rank, self.center)[0]
        del residual
        self.fold_in_ridge_ = max(ridge, floors[0])
        self._row_factors = U_bal
        if weight < _WEAK_WEIGHT:
            warn_user(
                f"SVDImputer: on held-out entries the rank-{rank} model improves "
                "little on the column means; its completion is shrunk toward "
                f"them (low_rank_weight_={weight:.2f}). The data may not be "
                "low rank: consider another imputer."
            )
        self._report(search, self.ridge_, weight)

    def _export_history(self, n_iter, losses, converged, seconds):
        """The fitted history attributes every iterative method exposes."""
        n_iter = max(n_iter, 1)
        History(
            n_iter=n_iter,
            train_loss=list(losses),
            best_iter=n_iter,
            best_loss=losses[-1] if losses else math.nan,
            final_loss=losses[-1] if losses else math.nan,
            stop_reason="converged" if converged else "max_iter",
            max_iter=self.max_iter,
            fit_time=seconds,
        ).export(self)

    def _store_constant(self, entries, means):
        """Rank 0: the completion is the column means."""
        m, n = entries.shape
        self.components_ = np.zeros((0, n))
        self.singular_values_ = np.zeros(0)
        self.offsets_ = to_numpy(means)
        self.low_rank_weight_ = 0.0
        self.ridge_ = 0.0
        self.fold_in_ridge_ = 0.0
        loss = float(entries.centred(means).square().mean())
        self._export_history(1, [loss], True, 0.0)
        self._row_factors = torch.zeros(m, 0, dtype=means.dtype)
        warn_user(
            "SVDImputer(rank='auto'): no rank improved the held-out error of the "
            "column means by more than 2 %; the completion is the column means "
            "(rank_=0). The data may not be low rank: consider another imputer."
        )

    def _report(self, search, ridge, weight):
        if not self.verbose:
            return
        reason = search.reason if search is not None else "given"
        print(
            f"SVDImputer: rank_={self.rank_} ({reason}); ridge {ridge:.3g}, "
            f"low-rank weight {weight:.3g}",
            file=sys.stderr,
        )

    def _store_factors(self, U, V, offsets):
        """Store ``U Vᵀ = P diag(s) Qᵀ`` balanced; return the left factor ``P√s``.

        Balanced components (``√s Qᵀ``) make fold-in with a ridge penalty match
        the nuclear-norm (SoftImpute) solution.
        """
        Qu, Ru = torch.linalg.qr(U)
        Qv, Rv = torch.linalg.qr(V)
        A, s, Wt = torch.linalg.svd(Ru @ Rv.T)
        root = s.sqrt()
        self.singular_values_ = to_numpy(s)
        self.components_ = to_numpy((Qv @ Wt.T * root).T)
        self.offsets_ = to_numpy(offsets)
        return Qu @ A * root

    def _blend(self, low_rank, cols=None):
        """``m + w (fit − m)``: shrink the fit toward the column means."""
        w = self.low_rank_weight_
        if w == 1.0:
            return low_rank
        m = self.column_means_ if cols is None else self.column_means_[cols]
        return m + w * (low_rank - m)

    def _dense_completion(self):
        """The completion of the training matrix (dense, scaled units)."""
        U = to_numpy(self._row_factors)
        if self.rank_ == 0:
            return np.broadcast_to(self.offsets_, (U.shape[0], len(self.offsets_)))
        out = U @ self.components_
        out += self.offsets_
        return self._blend(out)

    def _predict_entries(self, rows, cols):
        U = to_numpy(self._row_factors)
        if self.rank_ == 0:
            return self.offsets_[cols].copy()
        fitted = np.einsum("ij,ji->i", U[rows], self.components_[:, cols])
        return self._blend(fitted + self.offsets_[cols], cols)

    # ------------------------------------------------------------ transform
    def _transform(self, X, mask):
        if self.rank_ == 0:
            return np.broadcast_to(self.offsets_, X.shape).copy()
        device = self._device
        dtype = compute_dtype(device)
        V = to_tensor(self.components_.T, device, dtype)
        c = to_tensor(self.offsets_, device, dtype)
        M = to_tensor(mask, device).to(dtype)
        R = torch.nan_to_num(to_tensor(X, device, dtype) - c) * M
        U = _ridge_rows(M, R, V, self.fold_in_ridge_)
        return self._blend(to_numpy(U @ V.T + c))


# ---------------------------------------------------------------- entries
# Entries per chunk of the element-wise passes and of the Gram products:
# their temporaries stay below 8 MB (float64) whatever the number of entries.
_CHUNK = 2**20


class _Entries:
    """Observed entries, row-major, with sparse (CSR) layouts of both sides.

    Holds 20 bytes per entry (float64): the values, the row-major column
    index, and the column-major order and row index (int32 indices where they
    fit), plus the two index pointers. The rows of the entries are not kept
    (the row pointer has them); the sparsity pattern is a CSR view with an
    expanded (zero-byte) tensor of ones.
    """

    def __init__(self, rows, cols, values, shape, device, dtype):
        rows = np.asarray(rows)
        cols = np.asarray(cols)
        values = np.asarray(values)
        rows, cols, values = _row_major(rows, cols, values)
        m, n = shape
        self.shape = (int(m), int(n))
        self.device, self.dtype = device, dtype
        self.nnz = int(rows.size)
        fits = max(m, n, self.nnz) < 2**31 - 1
        index_np = np.int32 if fits else np.int64
        self._index_dtype = torch.int32 if fits else torch.int64
        self.values = to_tensor(values, device, dtype)
        self.cols = torch.as_tensor(cols.astype(index_np), device=device)
        self._row_ptr = _compressed(rows, m, device, self._index_dtype)
        t_order = np.argsort(cols, kind="stable")
        self._t_index = torch.as_tensor(rows[t_order].astype(index_np), device=device)
        self._t_order = torch.as_tensor(t_order.astype(index_np), device=device)
        del t_order
        self._col_ptr = _compressed(cols, n, device, self._index_dtype)

    @property
    def rows(self):
        """Row of each entry (int64, computed from the row pointer)."""
        counts = (self._row_ptr[1:] - self._row_ptr[:-1]).long()
        positions = torch.arange(self.shape[0], device=self.device)
        return torch.repeat_interleave(positions, counts)

    def pattern(self, transpose=False):
        """The sparsity pattern as a CSR matrix of ones (no ``nnz`` array)."""
        ones = torch.ones(1, dtype=self.dtype, device=self.device).expand(self.nnz)
        return self._csr(ones, transpose)

    def matrix(self, values, transpose=False):
        """CSR matrix (or its transpose) holding ``values`` at the entries.

        ``values`` are in row-major order; the transpose gathers them into
        column-major order (a new array of ``nnz`` values).
        """
        if transpose:
            values = values[self._t_order]
        return self._csr(values, transpose)

    def _csr(self, values, transpose):
        if transpose:
            ptr, index, shape = self._col_ptr, self._t_index, self.shape[::-1]
        else:
            ptr, index, shape = self._row_ptr, self.cols, self.shape
        return _csr(ptr, index, values, shape)

    def centred(self, c):
        """``values − c[cols]``, in chunks (one new array of ``nnz`` values)."""
        out = torch.empty_like(self.values)
        for start in range(0, self.nnz, _CHUNK):
            part = slice(start, start + _CHUNK)
            torch.sub(self.values[part], c[self.cols[part]], out=out[part])
        return out

    def fitted(self, U, V, c):
        """Model values ``u_i·v_j + c_j`` at the entries (no ``nnz × rank`` temp)."""
        if U.shape[1] == 0:
            return c[self.cols]
        out = torch.sparse.sampled_addmm(
            self.pattern(), U.contiguous(), V.T.contiguous(), beta=0.0
        ).values()
        for start in range(0, self.nnz, _CHUNK):
            part = slice(start, start + _CHUNK)
            out[part].add_(c[self.cols[part]])
        return out

    def residual(self, U, V, c):
        """``values − fitted`` (one array of ``nnz`` values, computed in place)."""
        return self.fitted(U, V, c).neg_().add_(self.values)


def _trim_heap(nnz=None):
    """Give the heap's freed pages back to the system (glibc's ``malloc_trim``).

    Called between the fit's stages (folds built, search and selection done):
    glibc keeps freed blocks of a few MB to 32 MB in the process (above its
    adaptive mmap threshold they are not unmapped), so the next stage would
    start above its own needs. Only for large problems (``nnz`` of at least
    ``_CHUNK``, or ``None``); a no-op where the C library has no
    ``malloc_trim``.
    """
    if nnz is not None and nnz < _CHUNK:
        return
    if _LIBC[0] is None:
        try:
            import ctypes

            _LIBC[0] = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _LIBC[0] = False
    if _LIBC[0]:
        _LIBC[0](0)


_LIBC: list = [None]


def _row_major(rows, cols, values):
    """The entries sorted by (row, column); unchanged (no copy) when they are."""
    if rows.size > 1:
        keys_sorted = np.all(
            (rows[1:] > rows[:-1]) | ((rows[1:] == rows[:-1]) & (cols[1:] > cols[:-1]))
        )
        if not keys_sorted:
            order = np.lexsort((cols, rows))
            rows, cols, values = rows[order], cols[order], values[order]
    return rows, cols, values


_CSR_WARNED = False


def _csr(ptr, index, values, shape):
    global _CSR_WARNED
    if _CSR_WARNED:
        return torch.sparse_csr_tensor(
            ptr, index, values, shape, check_invariants=False
        )
    with warnings.catch_warnings():
        # torch warns once per process that CSR support is beta.
        warnings.simplefilter("ignore", UserWarning)
        out = torch.sparse_csr_tensor(ptr, index, values, shape, check_invariants=False)
    _CSR_WARNED = True
    return out


def _compressed(sorted_index, size, device, dtype):
    counts = np.bincount(sorted_index, minlength=size)
    ptr = np.concatenate([[0], np.cumsum(counts)])
    return torch.as_tensor(ptr.astype(np.int64), device=device).to(dtype)


def _column_means(entries):
    n = entries.shape[1]
    counts = torch.bincount(entries.cols, minlength=n).to(entries.dtype)
    sums = torch.zeros(n, dtype=entries.dtype, device=entries.device).index_add_(
        0, entries.cols, entries.values
    )
    return sums / counts.clamp(min=1)


def _fold_indices(nnz, seed):
    """``(kept, held)`` index pairs: one tenth, or five disjoint tenths on small data.

    The single split is the package's hold-out rule (``split_indices``); the
    five tenths of small data are consecutive slices of one seeded
    permutation.
    """
    n_folds = _N_FOLDS if nnz < _SMALL_NNZ else 1
    if n_folds == 1:
        kept, held = split_indices(nnz, _VALIDATION_FRACTION, seed)
        return [(kept, held)] if held.size else []
    perm = np.random.RandomState(seed).permutation(nnz)
    size = max(1, int(round(_VALIDATION_FRACTION * nnz)))
    pairs = []
    for f in range(n_folds):
        held = np.sort(perm[f * size : (f + 1) * size])
        if held.size == 0 or held.size >= nnz:
            continue
        keep = np.ones(nnz, dtype=bool)
        keep[held] = False
        pairs.append((np.flatnonzero(keep), held))
    return pairs


def _folds(rows, cols, values, shape, device, dtype, seed):
    """Held-out sets as ``(train, valid)`` pairs of :class:`_Entries`.

    ``rows, cols, values`` are the observed entries in row-major order; each
    subset keeps that order. Built straight from the arrays (no full
    :class:`_Entries` beside them), one fold's index arrays at a time.
    """
    folds = []
    for kept, held in _fold_indices(rows.size, seed):
        train = _Entries(rows[kept], cols[kept], values[kept], shape, device, dtype)
        del kept
        valid = _Entries(rows[held], cols[held], values[held], shape, device, dtype)
        folds.append((train, valid))
        _trim_heap(rows.size)
    return folds


# ----------------------------------------------------------- linear algebra
def _ridge(shrinkage, V):
    scale = float(V.square().sum()) / max(V.shape[0], 1)
    return shrinkage + _EPS_RIDGE * max(scale, 1e-12)


def _solve_spd(G, B):
    """Batched solve of symmetric positive definite systems G x = B."""
    return solve_spd(G, B)


def _gram_rows(S, F, ridge, n_free=None):
    """Per-row Gram matrices ``Σ_j S_ij f_j f_jᵀ + ridge·I`` via one product."""
    diag = torch.full((F.shape[1],), ridge, dtype=F.dtype, device=F.device)
    if n_free is not None:
        diag[n_free:] = _EPS_RIDGE
    return masked_gram(S, F, diag)


def _row_blocks(ptr, size, max_rows):
    """``(start, stop)`` blocks of rows: at most ``max_rows`` rows and (unless
    a single row has more) ``_CHUNK`` entries each."""
    if size <= max_rows and int(ptr[-1]) <= _CHUNK:
        return [(0, size)]
    bounds = ptr.long().cpu().numpy()
    blocks, start = [], 0
    while start < size:
        # the last row whose block stays within _CHUNK entries (at least one row)
        stop = int(np.searchsorted(bounds, bounds[start] + _CHUNK, side="right")) - 1
        stop = min(max(stop, start + 1), start + max_rows, size)
        blocks.append((start, stop))
        start = stop
    return blocks


def _solve_side(entries, transpose, F, rhs, ridge, n_free=None):
    """Ridge solves of every row (or column) against features ``F``.

    ``rhs`` holds ``Σ_j x_ij f_j`` per row; the Gram matrices are built and
    solved in blocks of rows so that they never exceed ``_BLOCK`` floats and
    each block's pattern has at most ``_CHUNK`` entries (a row with more is a
    block of its own).
    """
    k = F.shape[1]
    if transpose:
        ptr, index, (size, other) = (
            entries._col_ptr,
            entries._t_index,
            entries.shape[::-1],
        )
    else:
        ptr, index, (size, other) = entries._row_ptr, entries.cols, entries.shape
    outer = (F[:, :, None] * F[:, None, :]).reshape(F.shape[0], k * k)
    diag = torch.full((k,), ridge, dtype=F.dtype, device=F.device)
    if n_free is not None:
        diag[n_free:] = _EPS_RIDGE
    diag = torch.diag(diag)
    blocks = _row_blocks(ptr, size, max(1, _BLOCK // max(k * k, 1)))
    if len(blocks) == 1:
        S = _csr(ptr, index, _ones(entries.nnz, F), (size, other))
        return _solve_spd((S @ outer).reshape(-1, k, k).add_(diag), rhs)
    out = torch.empty(size, k, dtype=F.dtype, device=F.device)
    for start, stop in blocks:
        lo, hi = int(ptr[start]), int(ptr[stop])
        S = _csr(
            ptr[start : stop + 1] - lo,
            index[lo:hi],
            _ones(hi - lo, F),
            (stop - start, other),
        )
        G = (S @ outer).reshape(-1, k, k).add_(diag)
        out[start:stop] = _solve_spd(G, rhs[start:stop])
        del S, G
    return out


def _ones(size, like):
    return torch.ones(size, dtype=like.dtype, device=like.device)


def _ridge_rows(M, R, V, ridge):
    """Ridge fold-in of dense rows: ``argmin_u ‖R_i − (u Vᵀ)⊙M_i‖² + ridge‖u‖²``."""
    return ridge_fold_in(M, R, V, ridge)


def _sweep(entries, U, V, c, ridge_rows, ridge_cols, center):
    """One ALS sweep: rows given columns, then columns (and offsets) given rows.

    Holds at most one array of ``nnz`` values beside the entries (the
    centred values, then the column-major values).
    """
    rank = V.shape[1]
    R = entries.matrix(entries.centred(c))
    rhs = R @ V
    del R
    U = _solve_side(entries, False, V, rhs, ridge_rows)
    if center:
        ones = torch.ones(U.shape[0], 1, dtype=U.dtype, device=U.device)
        F = torch.cat([U, ones], 1)
    else:
        F = U
    X_cols = entries.matrix(entries.values, transpose=True)
    rhs = X_cols @ F
    del X_cols
    W = _solve_side(entries, True, F, rhs, ridge_cols, n_free=rank)
    V = W[:, :rank]
    if center:
        c = W[:, rank].contiguous()
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
    floor_rows = max(_ridge(shrinkage, V), floors[0])
    floor_cols = max(_ridge(shrinkage, U), floors[1])
    noise_rows = noise_cols = np.inf
    previous = None
    n_iter, losses, converged = 0, [], False
    if valid is not None:
        means = _column_means(entries)
        target = valid.values - means[valid.cols]
        base = max(float(target.square().mean()), 1e-300)
        best = (np.inf, (0.0, 0.0), 1.0)
        since_best, worse, exact = 0, 0, False
        plateau = max(
            _RIDGE_PATIENCE,
            int(np.ceil(_PLATEAU_DECADES * np.log(10.0) / -np.log(decay))),
        )
    show = bool(verbose) and valid is None
    bar = progress(max_iter, verbose if show else 0, "SVDImputer (als)")
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is returned
        penalty = penalty * decay
        ridge_rows = max(penalty, floor_rows)
        ridge_cols = max(penalty, floor_cols)
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
        # Noise floors are estimated once the path is over (before, the
        # residual measures the path's bias) and only ever fall: a rising floor
        # could shrink the factors, inflate the residual and rise again until
        # the fit collapses to zero.
        if shrinkage > 0:
            floor_rows, floor_cols = _floors(shrinkage, residual, U, V, rank, center)
        elif penalty <= _PATH_END * reference:
            rows_now, cols_now = _floors(shrinkage, residual, U, V, rank, center)
            noise_rows = min(noise_rows, rows_now)
            noise_cols = min(noise_cols, cols_now)
            floor_rows = max(noise_rows, floors[0])
            floor_cols = max(noise_cols, floors[1])
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
        path_over = penalty <= floor_rows
        if valid is not None:
            pred = valid.fitted(U, V, c) - means[valid.cols]
            squares = (target - pred).square()
            error = float(squares.mean())
            exact = exact or float(squares.median()) <= _NEGLIGIBLE * base
            if error < best[0] * (1 - 1e-9):
                ridges = (0.0, 0.0) if path_over else (ridge_rows, ridge_cols)
                denom = float(pred.square().sum())
                weight = float(target @ pred) / denom if denom > 0 else 0.0
                best = (error, ridges, float(np.clip(weight, 0.0, 1.0)))
                since_best = worse = 0
            else:
                since_best += 1
                if path_over or error > 1.05 * best[0]:
                    worse += 1
            # A flat held-out error over a decade of ridges (once the
            # low-rank part predicts the held-out entries at all: before, a
            # flat error may only mean that their rows or columns have not
            # been reached yet) says the ridge no longer matters.
            flat = since_best >= plateau and best[0] < (1 - _IMPROVEMENT) * base
            if worse >= _RIDGE_PATIENCE or flat or exact:
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
    if valid is not None:
        return best[1], best[2], exact
    return U, V, c, n_iter, losses, converged


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


def _floors(shrinkage, residual, U, V, rank, center):
    """Smallest ridges of the next row and column solves."""
    if shrinkage > 0:
        return _ridge(shrinkage, V), _ridge(shrinkage, U)
    noise_rows, noise_cols = _noise_ridges(residual, U, V, rank, center)
    return max(noise_rows, _ridge(0.0, V)), max(noise_cols, _ridge(0.0, U))


def _warn_if_underdetermined(shape, nnz, rank, center, shrinkage):
    """Warn when a rank-``rank`` fit has more unknowns than observed entries."""
    m, n = shape
    dof = _degrees_of_freedom(m, n, rank, center)
    if shrinkage == 0 and nnz < min(dof, m * n):
        warn_user(
            f"rank={rank} has {dof} degrees of freedom but only {nnz} "
            "entries are observed: the completion is not determined by the data "
            "and rests on the ridge chosen from held-out entries. Lower the "
            "rank, use rank='auto' (which only tries determined ranks) or set "
            "shrinkage > 0."
        )


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


# ------------------------------------------------------------- rank search
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
    return torch.cat([U, U_new], 1), torch.cat([V, V_new], 1).contiguous()


def _truncate(U, V, c, rank):
    """The best rank-``rank`` part of ``U Vᵀ`` (balanced factors)."""
    Qu, Ru = torch.linalg.qr(U)
    Qv, Rv = torch.linalg.qr(V)
    A, s, Wt = torch.linalg.svd(Ru @ Rv.T)
    root = s[:rank].sqrt()
    return (Qu @ A[:, :rank]) * root, (Qv @ Wt[:rank].T) * root, c


# ------------------------------------------------------------ dense solver
def _fit_svd(
    entries, rank, shrinkage, center, max_iter, tol, seed, verbose, floors=None
):
    """SVDimpute / SoftImpute: fill, truncated SVD, refill, repeat (dense).

    With ``center`` the column offsets are refit at every sweep as the column
    means of the filled matrix minus its low-rank part, so that offsets and
    low-rank part minimise the same squared error jointly.
    """
    m, n = entries.shape
    device, dtype = entries.device, entries.dtype
    rows, cols = entries.rows, entries.cols.long()
    observed = torch.zeros(m, n, dtype=torch.bool, device=device)
    observed[rows, cols] = True
    Y = torch.zeros(m, n, dtype=dtype, device=device)
    Y[rows, cols] = entries.values
    col_means = Y.sum(0) / observed.sum(0).clamp(min=1)
    Y = torch.where(observed, Y, col_means)
    low_rank = torch.zeros_like(Y)
    c = torch.zeros(n, dtype=dtype, device=device)
    gen = make_generator(seed)
    use_lowrank = rank + 10 < min(m, n) // 2
    n_iter, losses, converged = 0, [], False
    bar = progress(max_iter, verbose, "SVDImputer (svd)")
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is returned
        if center:
            c = (Y - low_rank).mean(0)
        P, s, Qt = _truncated_svd(Y - c, rank, use_lowrank, gen)
        s = (s - shrinkage).clamp(min=0)
        low_rank = (P * s) @ Qt
        Y_new = torch.where(observed, Y, low_rank + c)
        change = float((Y_new - Y).norm() / Y.norm().clamp(min=1e-300))
        Y = Y_new
        # mean squared residual on the observed entries
        losses.append(float((Y - low_rank - c)[observed].square().mean()))
        bar.set_postfix(change=f"{change:.2e}", refresh=False)
        bar.update(1)
        if change < tol:
            converged = True
            break
    bar.close()
    root = s.sqrt()
    return P * root, Qt.T * root, c, n_iter, losses, converged


def _truncated_svd(Z, rank, randomized, gen):
    if randomized:
        sub = make_generator(int(torch.randint(2**31 - 1, (1,), generator=gen)))
        P, s, Q = low_rank_svd(Z, rank + 10, 4, sub)
        return P[:, :rank], s[:rank], Q[:, :rank].T
    P, s, Qt = torch.linalg.svd(Z, full_matrices=False)
    return P[:, :rank], s[:rank], Qt[:rank]
