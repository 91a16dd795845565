"""Iterative SVD imputation: SVDimpute, SoftImpute and their fast ALS form."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseMatrixImputer, warn_user
from ._optim import progress
from ._torch import compute_dtype, make_generator, seed_from, to_numpy, to_tensor
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
# Share of the observed entries held out when the rank is chosen automatically.
_RANK_VALIDATION_FRACTION = 0.1
# Candidate ranks without improvement after which the rank search stops.
_RANK_PATIENCE = 2
# ALS sweeps per candidate rank during automatic rank selection.
_RANK_SEARCH_ITER = 40


class SVDImputer(BaseMatrixImputer):
    """Complete a matrix by iterative low-rank SVD (SVDimpute / SoftImpute).

    The model is ``X ≈ U Vᵀ + c`` with column offsets ``c``. Two solvers fit it:

    ``"als"`` (default)
        Alternating ridge regressions on the observed entries only
        (softImpute-ALS, Hastie et al. 2015). Memory and time per sweep grow
        with the number of observed entries times ``rank²``, never with
        ``n_samples × n_features``; this is the fast path for large, low-rank
        problems.
    ``"svd"``
        The classical loop of Troyanskaya et al. (2001): fill the holes with
        column means, take a rank-``rank`` SVD of the filled matrix
        (``torch.svd_lowrank`` when the rank is small against the matrix),
        refill the holes with the reconstruction, repeat. Dense: memory
        ``O(n_samples × n_features)``.

    With ``shrinkage > 0`` the singular values are soft-thresholded by
    ``shrinkage`` (SoftImpute, Mazumder, Hastie & Tibshirani 2010); in the ALS
    solver this is the equivalent ridge penalty ``shrinkage/2 (‖U‖² + ‖V‖²)``.

    Parameters
    ----------
    rank : int or "auto", default="auto"
        Rank of the fit. ``"auto"`` holds out 10 % of the observed entries and
        picks the smallest rank whose held-out error is within 2 % of the
        best, searching ranks 1, 2, 3, 4, 6, 9, 14, ... (until two candidates in
        a row bring no improvement) and then bisecting.
    shrinkage : float, default=0.0
        Soft threshold on the singular values (nuclear-norm weight), in the
        units of the scaled ``X`` (see ``scaling``). 0 gives the
        rank-``rank`` fit with a ridge set from the data (see Notes): none on
        exactly low-rank data, enough on noisy data to keep entries far from
        any observation from extrapolating.
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
        sweeps falls below ``tol``.
    missing_values : float, default=np.nan
        Marker of the missing entries.
    keep_empty_features : bool, default=False
        Keep all-missing columns in the output (filled with 0) instead of
        dropping them, like scikit-learn's imputers.
    device : str, default="auto"
        Torch device: "auto", "cpu", "cuda", "cuda:N" or "mps".
    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation and of the rank-selection split.
    verbose : int, default=0
        Show a progress bar over the sweeps.

    Attributes
    ----------
    rank_ : int
        Rank used for the final fit.
    components_ : ndarray of shape (rank_, n_valid_features)
        Right factor ``Vᵀ`` (rows scaled by the square roots of the singular
        values) that :meth:`transform` folds new rows into.
    offsets_ : ndarray of shape (n_valid_features,)
        Column offsets ``c``. Like ``components_`` and ``singular_values_``,
        in the units the model is fitted in: standard deviations from the
        columns' observed means with ``scaling="standard"``.
    singular_values_ : ndarray of shape (rank_,)
        Singular values of the fitted low-rank part ``U Vᵀ``.
    n_iter_ : int
        Sweeps run in the final fit.
    fold_in_ridge_ : float
        Ridge penalty with which :meth:`transform` folds rows in.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X is a DataFrame.

    Notes
    -----
    With ``shrinkage=0`` the ALS solver ends its penalty path at the ridge of
    probabilistic matrix factorisation, ``σ²/τ²`` (noise variance over factor
    variance, Salakhutdinov & Mnih 2008), estimated from the residual and the
    factors once the path has ended. On exactly low-rank data the residual
    vanishes and so does the ridge (exact recovery); on noisy data, such as
    images with whole patches missing, it keeps rows and columns with few or
    badly placed observations from fitting the noise (without it, a rank-30
    fit of a 240 × 240 image with a missing patch filled the patch with
    values up to 5 on a [0, 1] scale). ``solver="svd"`` is the classical hard
    rank-``rank`` loop without this ridge.

    ``transform`` folds each row in: it solves the ridge problem
    ``min_u ‖x_O − (u Vᵀ + c)_O‖² + λ‖u‖²`` over the row's observed entries
    ``O`` with ``V`` fixed (``λ = fold_in_ridge_``: ``shrinkage``, or the
    fit's noise ridge), so rows are completed independently and new rows
    need no refit.

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
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    @property
    def _scaling(self) -> str:
        # Read by the base class; a parameter so that raw units stay available.
        return self.scaling

    # ------------------------------------------------------------------ fit
    def _fit(self, X, mask):
        device = self._device
        dtype = compute_dtype(device)
        seed = seed_from(self.random_state)
        rows, cols = np.nonzero(mask)
        entries = _Entries(rows, cols, X[rows, cols], X.shape, device, dtype)
        max_rank = min(X.shape)
        if self.rank == "auto":
            rank = self._select_rank(entries, max_rank, seed)
        else:
            rank = min(self.rank, max_rank)
            if rank < self.rank:
                warn_user(
                    f"rank={self.rank} exceeds min(n_samples, n_features)={max_rank};"
                    f" using rank={rank}."
                )
        _warn_if_underdetermined(entries, rank, self.center, self.shrinkage)
        solver = "als" if self.solver == "auto" else self.solver
        fit = _fit_als if solver == "als" else _fit_svd
        U, V, offsets, n_iter = fit(
            entries,
            rank,
            self.shrinkage,
            self.center,
            self.max_iter,
            self.tol,
            seed,
            self.verbose,
        )
        self.rank_ = rank
        self.n_iter_ = max(n_iter, 1)
        U_bal = self._store_factors(U, V, offsets)
        V_bal = torch.as_tensor(self.components_.T, device=device, dtype=dtype)
        residual = entries.residual(U_bal, V_bal, offsets)
        # New rows are folded in with the same ridge the fit's rows had.
        self.fold_in_ridge_ = _floors(
            self.shrinkage, residual, U_bal, V_bal, rank, self.center
        )[0]
        return to_numpy(U @ V.T + offsets)

    def _select_rank(self, entries, max_rank, seed):
        kept, held = split_indices(entries.nnz, _RANK_VALIDATION_FRACTION, seed)
        if held.size == 0:
            return 1
        train, valid = entries.subset(kept), entries.subset(held)
        errors: dict[int, float] = {}

        def error(rank):
            if rank not in errors:
                U, V, c, _ = _fit_als(
                    train,
                    rank,
                    self.shrinkage,
                    self.center,
                    _RANK_SEARCH_ITER,
                    self.tol,
                    seed,
                    0,
                )
                errors[rank] = float(valid.residual(U, V, c).square().mean())
            return errors[rank]

        # Grow the rank geometrically until the held-out error has not improved
        # for _RANK_PATIENCE candidates: a rank below the true one can fit
        # worse than a smaller one (it overfits the part it leaves out), so
        # one bump must not end the search. An exact fit cannot be improved on.
        exact = 1e-12 * float(valid.values.square().mean())
        rank, best, since_best = 1, np.inf, 0
        while rank <= max_rank and best > exact and since_best < _RANK_PATIENCE:
            if error(rank) < best:
                best, since_best = error(rank), 0
            else:
                since_best += 1
            rank = max(rank + 1, round(1.5 * rank))
        best = min(errors.values())

        def good(r):
            # Within 2 % of the best, or indistinguishable from an exact fit.
            return error(r) <= 1.02 * best + 1e4 * exact

        # Smallest good rank: bisect below the smallest good rank seen so far.
        hi = min(r for r in errors if good(r))
        lo = max([r for r in errors if r < hi and not good(r)], default=0)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if good(mid) else (mid, hi)
        return hi

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

    # ------------------------------------------------------------ transform
    def _transform(self, X, mask):
        device = self._device
        dtype = compute_dtype(device)
        V = to_tensor(self.components_.T, device, dtype)
        c = to_tensor(self.offsets_, device, dtype)
        M = to_tensor(mask, device).to(dtype)
        R = torch.nan_to_num(to_tensor(X, device, dtype) - c) * M
        U = _ridge_rows(M, R, V, self.fold_in_ridge_)
        return to_numpy(U @ V.T + c)


class _Entries:
    """Observed entries, row-major, with cached sparse (CSR) layouts."""

    def __init__(self, rows, cols, values, shape, device, dtype):
        order = np.lexsort((cols, rows))
        rows, cols, values = rows[order], cols[order], np.asarray(values)[order]
        self.shape = shape
        self.device, self.dtype = device, dtype
        self.nnz = len(rows)
        self._rows_np, self._cols_np = rows, cols
        self.rows = torch.as_tensor(rows, device=device)
        self.cols = torch.as_tensor(cols, device=device)
        self.values = to_tensor(values, device, dtype)
        self._row_ptr = _compressed(rows, shape[0], device)
        self._t_order = torch.as_tensor(np.lexsort((rows, cols)), device=device)
        self._col_ptr = _compressed(cols, shape[1], device)
        self._t_index = self.rows[self._t_order]

    def subset(self, idx):
        return _Entries(
            self._rows_np[idx],
            self._cols_np[idx],
            to_numpy(self.values)[idx],
            self.shape,
            self.device,
            self.dtype,
        )

    def matrix(self, values, transpose=False):
        """Sparse CSR matrix (or its transpose) holding ``values`` at the entries."""
        if transpose:
            ptr, index, shape = self._col_ptr, self._t_index, self.shape[::-1]
            values = values[self._t_order]
        else:
            ptr, index, shape = self._row_ptr, self.cols, self.shape
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "CSR support is beta"
            return torch.sparse_csr_tensor(
                ptr, index, values, shape, check_invariants=False
            )

    def residual(self, U, V, c):
        fitted = (U[self.rows] * V[self.cols]).sum(1) + c[self.cols]
        return self.values - fitted


def _compressed(sorted_index, size, device):
    counts = np.bincount(sorted_index, minlength=size)
    return torch.as_tensor(np.concatenate([[0], np.cumsum(counts)]), device=device)


def _ridge(shrinkage, V):
    scale = float(V.square().sum()) / max(V.shape[0], 1)
    return shrinkage + _EPS_RIDGE * max(scale, 1e-12)


def _solve_spd(G, B):
    """Batched solve of symmetric positive definite systems G x = B."""
    L, info = torch.linalg.cholesky_ex(G)
    if bool(info.any()):
        return torch.linalg.lstsq(G, B.unsqueeze(-1)).solution.squeeze(-1)
    return torch.cholesky_solve(B.unsqueeze(-1), L).squeeze(-1)


def _gram_rows(S, F, ridge, n_free=None):
    """Per-row Gram matrices ``Σ_j S_ij f_j f_jᵀ + ridge·I`` via one product."""
    k = F.shape[1]
    outer = (F[:, :, None] * F[:, None, :]).reshape(F.shape[0], k * k)
    G = (S @ outer).reshape(-1, k, k)
    diag = torch.full((k,), ridge, dtype=F.dtype, device=F.device)
    if n_free is not None:
        diag[n_free:] = _EPS_RIDGE
    return G + torch.diag(diag)


def _ridge_rows(M, R, V, ridge):
    """Ridge fold-in of dense rows: ``argmin_u ‖R_i − (u Vᵀ)⊙M_i‖² + ridge‖u‖²``."""
    G = _gram_rows(M, V, ridge)
    return _solve_spd(G, R @ V)


def _init_factors(entries, rank, center, seed):
    """Spectral start: top singular vectors of the rescaled zero-filled matrix."""
    m, n = entries.shape
    device, dtype = entries.device, entries.dtype
    counts = torch.zeros(n, dtype=dtype, device=device).index_add_(
        0, entries.cols, torch.ones_like(entries.values)
    )
    sums = torch.zeros(n, dtype=dtype, device=device).index_add_(
        0, entries.cols, entries.values
    )
    c = (
        sums / counts.clamp(min=1)
        if center
        else torch.zeros(n, dtype=dtype, device=device)
    )
    p = entries.nnz / (m * n)
    S = entries.matrix((entries.values - c[entries.cols]) / p)
    gen = make_generator(seed)
    q = min(rank + 10, m, n)
    # Randomised range finder with a few power iterations (sparse products).
    Q = torch.randn(n, q, generator=gen, dtype=dtype).to(device)
    Q = torch.linalg.qr(S @ Q).Q
    St = entries.matrix((entries.values - c[entries.cols]) / p, transpose=True)
    for _ in range(4):
        Q = torch.linalg.qr(St @ Q).Q
        Q = torch.linalg.qr(S @ Q).Q
    B = (St @ Q).T  # q × n
    Ub, s, Vt = torch.linalg.svd(B, full_matrices=False)
    root = s[:rank].sqrt()
    return (Q @ Ub[:, :rank]) * root, Vt[:rank].T * root, c


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


def _fit_als(entries, rank, shrinkage, center, max_iter, tol, seed, verbose):
    """Alternating ridge regressions on the observed entries (softImpute-ALS).

    The ridge starts at 1 % of the largest singular value of the spectral
    start and decays geometrically to its floor; convergence is only tested
    once it has arrived there. The floor is ``shrinkage`` when given;
    otherwise it is the noise ridge of :func:`_noise_ridges`, which vanishes
    on exactly low-rank data and keeps noisy fits from extrapolating wildly.
    """
    U, V, c = _init_factors(entries, rank, center, seed)
    mask_rows = entries.matrix(torch.ones_like(entries.values))
    mask_cols = entries.matrix(torch.ones_like(entries.values), transpose=True)
    X_cols = entries.matrix(entries.values, transpose=True)
    ones = torch.ones(entries.shape[0], 1, dtype=entries.dtype, device=entries.device)
    penalty = 0.01 * float(U.square().sum(1).max() + V.square().sum(1).max())
    start = penalty
    decay = _path_decay(entries, rank)
    floor_rows, floor_cols = _ridge(shrinkage, V), _ridge(shrinkage, U)
    noise_rows = noise_cols = np.inf
    previous = None
    n_iter = 0
    bar = progress(max_iter, verbose, "SVDImputer (als)")
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is returned
        penalty = penalty * decay
        ridge_rows = max(penalty, floor_rows)
        # Rows: targets x_ij − c_j, features v_j.
        R = entries.matrix(entries.values - c[entries.cols])
        U = _solve_spd(_gram_rows(mask_rows, V, ridge_rows), R @ V)
        # Columns: targets x_ij, features [u_i, 1] (offset unpenalised).
        F = torch.cat([U, ones], 1) if center else U
        G = _gram_rows(mask_cols, F, max(penalty, floor_cols), n_free=rank)
        W = _solve_spd(G, X_cols @ F)
        V = W[:, :rank]
        if center:
            c = W[:, rank]
        residual = entries.residual(U, V, c)
        fitted = entries.values - residual
        # Noise floors are estimated once the path is over (before, the
        # residual measures the path's bias) and only ever fall: a rising floor
        # could shrink the factors, inflate the residual and rise again until
        # the fit collapses to zero.
        if shrinkage > 0:
            floor_rows, floor_cols = _floors(shrinkage, residual, U, V, rank, center)
        elif penalty <= _PATH_END * start:
            rows_now, cols_now = _floors(shrinkage, residual, U, V, rank, center)
            floor_rows = noise_rows = min(noise_rows, rows_now)
            floor_cols = noise_cols = min(noise_cols, cols_now)
        change = (
            np.inf
            if previous is None
            else float((fitted - previous).norm() / previous.norm().clamp(min=1e-300))
        )
        previous = fitted
        bar.set_postfix(change=f"{change:.2e}", penalty=f"{penalty:.1e}", refresh=False)
        bar.update(1)
        if penalty <= floor_rows and change < tol:
            break
    bar.close()
    return U, V, c, n_iter


def _floors(shrinkage, residual, U, V, rank, center):
    """Smallest ridges of the next row and column solves."""
    if shrinkage > 0:
        return _ridge(shrinkage, V), _ridge(shrinkage, U)
    noise_rows, noise_cols = _noise_ridges(residual, U, V, rank, center)
    return max(noise_rows, _ridge(0.0, V)), max(noise_cols, _ridge(0.0, U))


def _warn_if_underdetermined(entries, rank, center, shrinkage):
    """Warn when a rank-``rank`` fit has more unknowns than observed entries."""
    m, n = entries.shape
    dof = _degrees_of_freedom(m, n, rank, center)
    if shrinkage == 0 and entries.nnz < min(dof, m * n):
        warn_user(
            f"rank={rank} has {dof} degrees of freedom but only {entries.nnz} "
            "entries are observed: the completion is not determined by the data "
            "and may take any size. Lower the rank, use rank='auto' or set "
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


def _fit_svd(entries, rank, shrinkage, center, max_iter, tol, seed, verbose):
    """SVDimpute / SoftImpute: fill, truncated SVD, refill, repeat (dense).

    With ``center`` the column offsets are refit at every sweep as the column
    means of the filled matrix minus its low-rank part, so that offsets and
    low-rank part minimise the same squared error jointly.
    """
    m, n = entries.shape
    device, dtype = entries.device, entries.dtype
    observed = torch.zeros(m, n, dtype=torch.bool, device=device)
    observed[entries.rows, entries.cols] = True
    Y = torch.zeros(m, n, dtype=dtype, device=device)
    Y[entries.rows, entries.cols] = entries.values
    col_means = Y.sum(0) / observed.sum(0).clamp(min=1)
    Y = torch.where(observed, Y, col_means)
    low_rank = torch.zeros_like(Y)
    c = torch.zeros(n, dtype=dtype, device=device)
    gen = make_generator(seed)
    use_lowrank = rank + 10 < min(m, n) // 2
    n_iter = 0
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
        bar.set_postfix(change=f"{change:.2e}", refresh=False)
        bar.update(1)
        if change < tol:
            break
    bar.close()
    root = s.sqrt()
    return P * root, Qt.T * root, c, n_iter


def _truncated_svd(Z, rank, randomized, gen):
    if randomized:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=gen)))
            P, s, Q = torch.svd_lowrank(Z, q=rank + 10, niter=4)
        return P[:, :rank], s[:rank], Q[:, :rank].T
    P, s, Qt = torch.linalg.svd(Z, full_matrices=False)
    return P[:, :rank], s[:rank], Qt[:rank]
