"""Iterative SVD imputation: SVDimpute, SoftImpute and their fast ALS form.

The estimator; its pieces live in modules named after their job:
``_svd_entries`` (the observed entries' layout and held-out folds),
``_svd_als`` (the alternating ridge regressions and the penalty path),
``_svd_selection`` (the held-out rank search and ridge selection) and
``_svd_dense`` (the classical fill-and-SVD loop).
"""

from __future__ import annotations

import math
import numbers
import sys
import time

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseMatrixImputer, warn_user
from ._linalg import ridge_fold_in
from ._optim import History, warn_not_converged
from ._registry import _iters
from ._svd_als import _degrees_of_freedom, _fit_als, _floors
from ._svd_dense import _fit_svd
from ._svd_entries import (
    _column_means,
    _Entries,
    _fold_indices,
    _folds,
    _row_major,
    _trim_heap,
)
from ._svd_selection import _RankSearch, _select_ridge
from ._torch import compute_dtype, seed_from, to_numpy, to_tensor

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
        (below 2,000 observed entries five disjoint tenths, whose errors,
        each without its largest tenth, are combined by their median) and
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
    The base class keeps the observed entries (16 bytes each with int32
    indices) and hands their scaled values over; those are released during
    the rank search and the ridge selection (the held-out folds hold every
    value) and put back together for the final fit, and freed temporaries
    are handed back to the system (``malloc_trim``) within and after each
    sweep. The largest transient is the column solves' outer products,
    ``n_samples × (rank + 1)²`` floats. Measured memory is on the method
    page (:ref:`svd`). Time per sweep
    ``O(nnz rank² + (n_samples + n_features) rank³)``.

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
    # Listing order, --fast settings and fit-time model: see sklearn_mc._registry.
    _cli_order = 10
    _fast_params: dict = {"max_iter": 100}
    _iterative = True

    @staticmethod
    def _fit_cost(params: dict, n_rows: int, n_cols: int, n_observed: int) -> float:
        # rank='auto' fits several candidate ranks on a hold-out first.
        search = 5.0 if params.get("rank", "auto") == "auto" else 1.0
        return search * _iters(params, 500) * (5e-3 + 1.4e-6 * n_rows * n_cols)

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
    #: int32 indices are what ``_Entries`` keeps: no int64 copy of them.
    _compact_entries = True

    def _fit(self, entries, mask):
        # Dense input takes the sparse route, so both give the same fit.
        self._fit_entries(entries)
        return self._dense_completion()

    def _fit_entries(self, entries):
        # The values are the fit's own scaled copy (the base's hand-over, or
        # fit_sparse's): taken out of the entries, so that _fit_core holds
        # the only reference and can release them during the rank search.
        handover = _Handover(entries.values)
        entries.values = None
        self._fit_core(entries.rows, entries.cols, handover, entries.shape)

    def _fit_core(self, rows, cols, values, shape):
        """Fit on observed entries (scaled units, valid columns only).

        One layout of the entries at a time: the held-out folds for the rank
        search and the ridge selection, then all entries for the final fit.
        """
        device = self._device
        dtype = compute_dtype(device)
        seed = seed_from(self.random_state)
        if isinstance(values, _Handover):
            values = values.take()
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
        # The folds hold every value (held in + held out); where they hold
        # them exactly (float64 on the CPU), the full array is released
        # during the search and the selection and put back together for the
        # final fit: one array of nnz values less at the search's peak.
        recompose = (
            bool(folds)
            and values.dtype == np.float64
            and dtype == torch.float64
            and device.type == "cpu"
        )
        if recompose:
            values = None
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
        if values is None:
            values = _recomposed(folds[0], nnz, seed)
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
        w = self.low_rank_weight_
        if w != 1.0:
            # _blend in place (m + w (fit - m), the same operations): no
            # temporaries of the output's size
            m = self.column_means_
            out -= m
            out *= w
            out += m
        return out

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
        U = ridge_fold_in(M, R, V, self.fold_in_ridge_)
        return self._blend(to_numpy(U @ V.T + c))


class _Handover:
    """The scaled values passed to ``_fit_core`` as its only reference.

    :meth:`take` hands them out once, so that no caller's frame keeps the
    array alive once the fit releases it.
    """

    __slots__ = ("values",)

    def __init__(self, values):
        self.values = values

    def take(self):
        values, self.values = self.values, None
        return values


def _recomposed(fold, nnz, seed):
    """All values in row-major order, copied back from the first fold.

    Its held-in and held-out entries are the values at the indices of
    :func:`~sklearn_mc._svd_entries._fold_indices` (the same seeded draw),
    float64 on the CPU: the copy is the released array bit for bit.
    """
    train, valid = fold
    kept, held = _fold_indices(nnz, seed)[0]
    values = np.empty(nnz)
    values[kept] = train.values.numpy()
    values[held] = valid.values.numpy()
    return values


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
