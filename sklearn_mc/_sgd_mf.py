"""Matrix factorisation by stochastic gradients on the observed entries (Funk-SVD)."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import BaseMatrixImputer
from ._linalg import masked_gram
from ._optim import DivergenceError, TrainResult, train
from ._torch import (
    compute_dtype,
    draw_seed,
    fit_generator,
    low_rank_svd,
    make_generator,
    to_numpy,
    to_tensor,
)
from .model_selection import split_indices

#: batch size of ``batch_size="auto"``: full batch up to this many observed
#: entries (exact, noise-free steps), mini-batches of this size beyond it.
_AUTO_BATCH = 65536
#: entries per block of rows folded in by :meth:`SGDMFImputer.transform`
#: (bounds the dense temporaries of the batched ridge solve to ~32 MB each).
_FOLD_IN_ENTRIES = 2**22
#: standard deviation of the random part of the initial factors (in the
#: scaled units of the data); small, so the fit starts near zero but off the
#: saddle point U = V = 0.
_INIT_STD = 1e-2
#: the automatic path starts at this fraction of the penalty that makes zero
#: factors stable, so that the leading direction grows from the first epoch
#: instead of waiting, neutral, for the penalty to fall.
_PATH_START = 0.5
#: ``scaling="auto"`` reads data with at most this many distinct observed
#: values as ratings on one scale (no per-column standardisation).
_RATING_LEVELS = 10
#: residuals below this fraction of the data's magnitude are rounding noise.
_NEGLIGIBLE = 1e-12
#: a fit whose final loss exceeds its starting loss by this factor has failed.
_FAILED_FIT_FACTOR = 2.0
#: ... unless it stays below this fraction of the data's mean square.
_FAILED_FIT_FLOOR = 0.1


class SGDMFImputer(BaseMatrixImputer):
    """Complete a matrix by a low-rank factorisation fitted with stochastic gradients.

    The model (Funk-SVD / biased matrix factorisation) is::

        X[i, j] ≈ U[i] · V[j] + mu + b[i] + c[j]

    with ``U`` of shape (n_samples, rank), ``V`` of shape (n_features, rank)
    and, when ``biases=True``, a global offset ``mu``, row biases ``b`` and
    column biases ``c``. It is fitted on the observed entries only, held as
    index triplets ``(row, column, value)``, by minimising the mean over those
    entries of ::

        (X[i, j] - prediction)² + alpha_t · (|U[i]|² + |V[j]|² + b[i]² + c[j]²)

    (each factor is penalised once per observed entry it touches, so rows and
    columns with many observations carry proportionally more weight) with
    Adam or SGD over shuffled mini-batches of observed entries, through the
    package's shared training loop.

    The penalty follows a path, ``alpha_t = alpha + (alpha_init - alpha) ·
    alpha_decay**t`` at epoch ``t``: it starts at half the smallest penalty for
    which all-zero factors are a local minimum (SoftImpute's ``λ_max`` for
    this penalty) and falls geometrically to ``alpha``. Like SoftImpute's
    warm-started ``λ`` path, this lets the dominant directions grow first and
    keeps gradient descent out of the spurious local minima that trap it from
    a random start when observations are scarce. Early stopping holds out
    ``validation_fraction`` of the observed entries and keeps the factors, and
    so the point on the path (``alpha_``), that predict them best.

    Parameters
    ----------
    rank : int, default=10
        Inner dimension of the factorisation. Capped at
        ``min(n_samples, n_features)`` (see ``rank_``).
    alpha : float, default=1e-3
        Final L2 penalty on factors and biases (the end of the path), in the
        scaled units of the data. Use 0 to recover an exactly low-rank matrix.
    alpha_init : float, "auto" or None, default="auto"
        Penalty at the first epoch. ``"auto"`` is half the smallest penalty
        at which zero factors are a local minimum,
        ``λ_max = ‖D_r^{-1/2} P_Ω(X) D_c^{-1/2}‖₂`` (``D_r``, ``D_c``:
        observation counts of rows and columns), computed by a randomised SVD
        of the sparse observed entries. None (or a value below ``alpha``)
        switches the path off: the penalty is ``alpha`` throughout.
    alpha_decay : float in (0, 1], default=0.99
        Factor by which ``alpha_t - alpha`` shrinks per optimiser step (per
        epoch in full batch; with ``s`` mini-batches per epoch, by
        ``alpha_decay**s`` per epoch). Slower paths (closer to 1) need more
        epochs but recover with fewer observations.
    biases : bool, default=True
        Learn ``mu``, ``b`` and ``c``. Set to False for the plain ``U Vᵀ``
        model (e.g. to compare with a truncated SVD).
    init : {"random", "spectral"}, default="random"
        Starting point. ``"random"``: small Gaussian factors (std 0.01 in the
        scaled units). ``"spectral"``: the top ``rank`` singular triplets of
        the zero-filled observed entries rescaled by ``m·n / nnz`` (a
        randomised SVD of the sparse matrix, ``O(nnz)`` memory), shrunk by
        the least-squares factor on the observed entries, plus the same
        noise: the classical warm start of non-convex matrix completion. It
        helps when observations are plentiful; near the information limit
        the random start with the penalty path recovers more often.
    optimizer : {"adam", "sgd", "rmsprop"}, default="adam"
        Update rule. ``"sgd"`` uses momentum 0.9; its factors are rescaled
        internally so that one learning rate suits matrices of any size
        (the curvature seen by a row factor shrinks with the number of rows).
    learning_rate : float, default=0.01
        Initial step size; halved automatically if the loss diverges.
    batch_size : int, "auto" or None, default="auto"
        Observed entries per gradient step. None means full batch; ``"auto"``
        is full batch up to 65,536 observed entries and mini-batches of that
        size beyond.
    max_iter : int, default=1000
        Maximum number of epochs (passes over the observed entries).
    tol : float, default=1e-4
        Relative improvement of the monitored loss that counts as progress:
        the held-out error with early stopping, otherwise the training
        objective; on the path the latter is only judged once the path has
        covered 99.9 % of its way to ``alpha`` (before that the objective
        moves with the penalty and may even rise as the factors grow).
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the observed entries, stop when
        their error stops improving and restore the best factors.
    validation_fraction : float, default=0.1
        Share of the observed entries held out for early stopping.
    n_iter_no_change : int, default=10
        Checks without progress before stopping. On the path the monitored
        error is checked each time the penalty has fallen by 10 % (every 11
        epochs at ``alpha_decay=0.99``), because while the penalty is still
        strong the held-out error can rise for a while before the factors
        grow; without the path, every epoch.
    scaling : {"auto", "standard", "minmax", "none"}, default="auto"
        Scale in which the model is fitted: ``"standard"`` (per column:
        observed mean 0 and standard deviation 1; tables with mixed units),
        ``"minmax"`` (observed range mapped onto [-1, 1]) or ``"none"``.
        ``"auto"`` is ``"none"`` when the observed values take at most 10
        distinct values (a rating scale shared by all columns, where
        per-column statistics of items with a handful of ratings would only
        add noise) and ``"standard"`` otherwise; the choice is made from the
        observed values alone, so dense and sparse input of the same data
        agree (see ``scaling_``). Column scaling preserves the rank; centring
        is absorbed exactly by the column biases.
    missing_values : float, default=np.nan
        Marker of the missing entries.
    keep_empty_features : bool, default=False
        Keep all-missing columns in the output (filled with 0) instead of
        dropping them.
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
        Seed of the initialisation, the early-stopping split and the
        shuffles.
    verbose : int, default=0
        Show a progress bar over the epochs.

    Attributes
    ----------
    rank_ : int
        Rank used, ``min(rank, n_samples, n_features)``.
    components_ : ndarray of shape (rank_, n_valid_features)
        Column factors ``Vᵀ`` (in the scaled units).
    row_factors_ : ndarray of shape (n_samples, rank_)
        Row factors ``U`` of the training rows (in the scaled units).
    intercept_ : float
        Global offset ``mu`` (0 without biases).
    row_bias_ : ndarray of shape (n_samples,)
        Row biases ``b`` (zeros without biases).
    column_bias_ : ndarray of shape (n_valid_features,)
        Column biases ``c`` (zeros without biases).
    n_iter_ : int
        Epochs run.
    loss_curve_ : list of float
        Training objective after each epoch.
    validation_loss_curve_ : list of float
        Mean squared error on the held-out entries at each check (empty
        without early stopping).
    learning_rate_ : float
        Step size in use at the end (lower than ``learning_rate`` if the fit
        had to recover from a divergence).
    scaling_ : str
        The scaling used (only set with ``scaling="auto"``).
    alpha_ : float
        Penalty of the factors kept (the point of the path early stopping
        chose, or the last one); :meth:`transform` folds rows in with it.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X is a DataFrame.

    See Also
    --------
    SVDImputer : Alternating least squares / iterative SVD on the same model.

    Notes
    -----
    Memory: training holds the observed entries as triplets (24 bytes each)
    and the parameters with their optimiser state and snapshots,
    ``O(nnz + (n_samples + n_features) · rank)``, plus ``O(batch_size ·
    rank)`` temporaries per step (``batch_size="auto"`` caps them at 65,536
    entries); no tensor of shape ``(n_samples, n_features)`` is built while
    training, and ``λ_max`` and the spectral start are randomised SVDs of a
    sparse tensor. A ``10⁴ × 10⁴`` matrix with 1 % observed is 10⁶ triplets
    (24 MB) and 2·10⁵·rank parameters (16 MB at rank 10, a few times that
    with Adam's state), which fits comfortably. What is ``n_samples ×
    n_features`` is the dense array interface itself: the input (read in
    place, not copied, when it is float64 with NaN for missing), its mask
    (1 byte per entry) and the dense completion ``fit_transform`` returns,
    made twice at the end (scaled and unscaled: 2 × 8 bytes per entry); a
    dense fit takes the observed entries from the base class, not a scaled
    dense copy. Bound, per observed entry: the kept triplets (24 bytes, a
    fitted attribute), their scaled values and the training / held-out
    triplets (about 32 bytes) and the sparse products of the spectral norm
    that starts the path (about 40 bytes, transient). Measured (peak resident
    memory above the input, ``benchmarks/bench_memory.py``): 431-514 MB,
    11-13.5 × X, on 100,000 × 50 with 20 % missing (X = 38 MB), was 815 MB
    (21 × X);
    part of it is memory the C allocator keeps after freeing the
    entry-sized temporaries. Time per epoch is ``O(nnz · rank)``.

    Sparse input avoids those: ``fit`` accepts :mod:`scipy.sparse` matrices
    and arrays, where **stored entries are observed (an explicit 0 is a
    rating of 0) and absent entries unknown** (scikit-learn's imputers read
    implicit zeros as zeros instead), and nothing of size ``n_samples ×
    n_features`` is built; :meth:`predict_entries` and
    :func:`sklearn_mc.ratings.recommend` give values without densifying.
    Dense input goes through the same observed entries, so both give the
    same completion. With mini-batches the penalty path advances once per
    optimiser step (``alpha_decay`` per step), so large data sets need few
    epochs.

    :meth:`transform` folds each row in: with ``V`` (and ``mu``, ``c``)
    fixed it solves the ridge problem of the objective above restricted to
    the row's observed entries ``O``::

        min_{u, b}  Σ_{j∈O} (x_j - mu - c_j - b - u·V_j)² + alpha·|O|·(|u|² + b²)

    for all rows at once (one batched ``(rank+1) × (rank+1)`` solve per row,
    Gram matrices built by a single matrix product with the mask). A tiny
    relative ridge keeps rows with fewer observations than ``rank`` solvable
    (their solution tends to the minimum-norm one).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mc import SGDMFImputer
    >>> from sklearn_mc.datasets import make_low_rank
    >>> X = make_low_rank(60, 30, 2, random_state=0)
    >>> X_missing = X.copy()
    >>> X_missing[np.random.RandomState(0).rand(*X.shape) < 0.3] = np.nan
    >>> imputer = SGDMFImputer(rank=2, alpha=0.0, optimizer="sgd",
    ...                        learning_rate=0.1, alpha_decay=0.95, max_iter=300,
    ...                        early_stopping=False, random_state=0)
    >>> X_filled = imputer.fit_transform(X_missing)
    >>> hidden = np.isnan(X_missing)
    >>> bool(np.abs(X_filled - X)[hidden].max() < 1e-3)
    True
    """

    _cli_name = "sgd-mf"
    _summary = "matrix factorisation by SGD on observed entries (ratings)"

    _parameter_constraints: dict = {
        **BaseMatrixImputer._parameter_constraints,
        "rank": [Interval(numbers.Integral, 1, None, closed="left")],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "alpha_init": [
            Interval(numbers.Real, 0, None, closed="left"),
            StrOptions({"auto"}),
            None,
        ],
        "alpha_decay": [Interval(numbers.Real, 0, 1, closed="right")],
        "biases": ["boolean"],
        "init": [StrOptions({"spectral", "random"})],
        "optimizer": [StrOptions({"adam", "sgd", "rmsprop"})],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "batch_size": [
            Interval(numbers.Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
            None,
        ],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "scaling": [StrOptions({"auto", "standard", "minmax", "none"})],
    }

    def __init__(
        self,
        *,
        rank=10,
        alpha=1e-3,
        alpha_init="auto",
        alpha_decay=0.99,
        biases=True,
        init="random",
        optimizer="adam",
        learning_rate=0.01,
        batch_size="auto",
        max_iter=1000,
        tol=1e-4,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=10,
        scaling="auto",
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
        self.alpha = alpha
        self.alpha_init = alpha_init
        self.alpha_decay = alpha_decay
        self.biases = biases
        self.init = init
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.scaling = scaling
        self.missing_values = missing_values
        self.keep_empty_features = keep_empty_features
        self.add_indicator = add_indicator
        self.min_value = min_value
        self.max_value = max_value
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    _supports_sparse = True
    _dense_fit_from_entries = True

    @property
    def _scaling(self) -> str:
        # The base class reads the scaling from here; a parameter rather than a
        # class constant, so that the plain U Vᵀ fit of raw data is available.
        if self.scaling != "auto":
            return self.scaling
        # The base keeps the observed entries before it asks for the scaling.
        values = self._train_entries.values
        self.scaling_ = (
            "none" if np.unique(values).size <= _RATING_LEVELS else "standard"
        )
        return self.scaling_

    # ------------------------------------------------------------------ fit
    def _fit(self, entries, mask):
        # Dense input takes the sparse path's route: its observed entries
        # (row-major, as from a sparse matrix), so both give the same fit; the
        # base hands them over scaled (``_dense_fit_from_entries``), without a
        # dense scaled copy of X.
        self._fit_entries(entries)
        with torch.no_grad():
            completion = torch.addmm(self._c + self._mu, self._U, self._V.T)
            completion += self._b[:, None]
        return to_numpy(completion)

    def _predict_entries(self, rows, cols):
        U, V = self.row_factors_, self.components_
        pred = np.einsum("ij,ji->i", U[rows], V[:, cols])
        pred += self.intercept_ + self.row_bias_[rows] + self.column_bias_[cols]
        return pred

    def _fit_entries(self, entries):
        device = self._device
        dtype = compute_dtype(device)
        n_rows, n_cols = entries.shape
        rank = min(self.rank, n_rows, n_cols)
        # Every random draw comes from the generator the base opened for this fit.
        init_gen = fit_generator()
        seed = draw_seed(init_gen)
        generator = make_generator(seed)

        rows = torch.as_tensor(entries.rows, device=device)
        cols = torch.as_tensor(entries.cols, device=device)
        vals = to_tensor(entries.values, device, dtype)
        if self.early_stopping:
            kept, held = split_indices(rows.numel(), self.validation_fraction, seed)
        else:
            kept, held = np.arange(rows.numel()), np.empty(0, dtype=np.int64)
        kept = torch.as_tensor(kept, device=device)
        held = torch.as_tensor(held, device=device)
        # The training indices as the two rows of one (2, nnz) tensor, the
        # layout of a sparse COO tensor: the sparse products use it as it is.
        t_index = torch.empty((2, kept.numel()), dtype=rows.dtype, device=device)
        torch.index_select(rows, 0, kept, out=t_index[0])
        torch.index_select(cols, 0, kept, out=t_index[1])
        t_rows, t_cols, t_vals = t_index[0], t_index[1], vals[kept]
        del kept
        nnz = t_vals.numel()

        model = _Factors.initialise(
            t_rows,
            t_cols,
            t_vals,
            (n_rows, n_cols),
            rank,
            self.biases,
            self.init,
            self.optimizer == "sgd",
            device,
            dtype,
            init_gen,
        )
        alpha = float(self.alpha)
        if self.alpha_init is None:
            alpha_init = alpha
        elif self.alpha_init == "auto":
            threshold = _zero_threshold(
                *_on_sparse_device(
                    t_rows, t_cols, model.residual(t_rows, t_cols, t_vals)
                ),
                (n_rows, n_cols),
                init_gen,
            )
            alpha_init = max(alpha, _PATH_START * threshold)
        else:
            alpha_init = max(alpha, float(self.alpha_init))
        path = {"alpha": alpha_init}

        # The path advances once per optimiser step (an epoch of mini-batches
        # is many steps), so that large data sets do not need more epochs.
        steps = _steps_per_epoch(nnz, self._batch_size(nnz))

        def penalty_at(epoch):
            return alpha + (alpha_init - alpha) * self.alpha_decay ** (epoch * steps)

        def on_epoch_start(epoch):
            path["alpha"] = penalty_at(epoch)

        def loss_fn(idx):
            if idx is None:
                r, c, v = t_rows, t_cols, t_vals
            else:
                r, c, v = t_rows[idx], t_cols[idx], t_vals[idx]
            return model.entry_loss(r, c, v, path["alpha"]).mean()

        on_path = alpha_init > alpha
        interval = _check_interval(on_path, self.alpha_decay, steps)
        validation_fn = stop_fn = start_monitored = None
        if held.numel() > 0:
            held_out = rows[held], cols[held], vals[held]
            del held

            def validation_fn():
                return model.objective(*held_out)

            start_monitored = validation_fn()
        elif on_path:
            # The objective minimised changes every epoch along the path (it
            # may even rise while the penalty falls and the factors grow), so
            # convergence is only judged once the path is all but over.
            stop_fn = _Stalled(
                lambda: model.objective(t_rows, t_cols, t_vals, path["alpha"]),
                interval,
                self.tol,
                self.n_iter_no_change,
                start=math.ceil(_path_end(self.alpha_decay) / steps),
            )
        # max |v - offset| and max |v| from the extremes (subtraction is
        # monotone, so this is the same number, without entry-sized copies)
        lo, hi = vals.aminmax() if vals.numel() else (vals.new_zeros(()),) * 2
        residual = torch.maximum(
            model.residual(None, None, lo).abs(), model.residual(None, None, hi).abs()
        )
        top = torch.maximum(lo.abs(), hi.abs())
        if float(residual) <= _NEGLIGIBLE * max(1.0, float(top)):
            # Nothing beyond the offset to fit (a single standardised row, a
            # constant matrix, up to rounding): zero factors are exact, and
            # steps of a fixed size from an exact start would only add noise.
            model.zero_factors()
            result = TrainResult(n_iter=1, train_loss=[0.0])
            result.learning_rate = self.learning_rate
        else:
            result = self._train(
                model,
                loss_fn,
                nnz,
                validation_fn,
                stop_fn,
                interval,
                on_epoch_start,
                path,
                generator,
            )
            _check_not_diverged(result, start_monitored, float(vals.square().mean()))
        self.rank_ = rank
        result.export(self)
        self.n_iter_ = max(result.n_iter, 1)
        self.learning_rate_ = result.learning_rate
        # The factors kept are those after epoch best_iter (early stopping) or
        # the last one; their penalty is the one the fold-in must use.
        kept_epoch = result.best_iter if validation_fn is not None else result.n_iter
        self.alpha_ = penalty_at(max(kept_epoch - 1, 0))
        with torch.no_grad():
            U, V, mu, b, c = model.export()
        self._V, self._mu, self._c = V, mu, c
        self._U, self._b = U, b
        self.components_ = to_numpy(V).T.copy()
        self.row_factors_ = to_numpy(U)
        self.intercept_ = float(mu)
        self.row_bias_ = to_numpy(b)
        self.column_bias_ = to_numpy(c)

    def _train(
        self,
        model,
        loss_fn,
        nnz,
        validation_fn,
        stop_fn,
        interval,
        on_epoch_start,
        path,
        generator,
    ):
        batch_size = self._batch_size(nnz)
        return train(
            model.parameters(),
            loss_fn,
            n_samples=nnz,
            batch_size=batch_size,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            generator=generator,
            optimizer=self.optimizer,
            tol=self.tol,
            # With stop_fn in charge, the loop's own rule on the (moving)
            # penalised objective must not stop the path.
            n_iter_no_change=(
                self.n_iter_no_change if stop_fn is None else self.max_iter + 1
            ),
            validation_fn=validation_fn,
            validation_interval=interval,
            stop_fn=stop_fn,
            on_epoch_start=on_epoch_start,
            status_fn=lambda: {"penalty": _penalty_label(path["alpha"])},
            verbose=self.verbose,
            desc=type(self).__name__,
        )

    def _batch_size(self, nnz):
        if self.batch_size == "auto":
            return None if nnz <= _AUTO_BATCH else _AUTO_BATCH
        return self.batch_size

    # ------------------------------------------------------------ transform
    def _transform(self, X, mask):
        device = self._V.device
        dtype = self._V.dtype
        blocks = []
        step = max(1, _FOLD_IN_ENTRIES // max(X.shape[1], 1))
        for start in range(0, X.shape[0], step):
            stop = start + step
            X_block = to_tensor(X[start:stop], device, dtype)
            M_block = to_tensor(mask[start:stop], device).to(dtype)
            blocks.append(to_numpy(self._fold_in(X_block, M_block)))
        return np.concatenate(blocks, axis=0)

    def _fold_in(self, X, M):
        """Ridge solve of every row's factor (and bias) with V fixed."""
        V, mu, c = self._V, self._mu, self._c
        Z = torch.cat([V, torch.ones_like(V[:, :1])], 1) if self.biases else V
        p = Z.shape[1]
        Y = torch.where(M > 0, X - mu - c, 0.0)
        gram = masked_gram(M, Z)
        rhs = Y @ Z
        n_obs = M.sum(1)
        diag_mean = gram.diagonal(dim1=1, dim2=2).mean(1)
        eps = torch.finfo(Z.dtype).eps ** 0.5
        ridge = self.alpha_ * n_obs + eps * (diag_mean + 1.0)
        eye = torch.eye(p, dtype=Z.dtype, device=Z.device)
        sol = torch.linalg.solve(gram + ridge[:, None, None] * eye, rhs.unsqueeze(-1))
        sol = sol.squeeze(-1)
        out = torch.addmm(c + mu, sol[:, : V.shape[1]], V.T)
        if self.biases:
            out += sol[:, -1:]
        return out

    # --------------------------------------------------------------- public
    def reconstruct(self, X=None) -> np.ndarray:
        """The model's estimate of every entry, observed ones included.

        Unlike :meth:`transform` and :meth:`fit_transform`, which return
        observed entries unchanged, this returns the fitted low-rank
        reconstruction itself, e.g. to measure how well the factorisation
        approximates a fully observed matrix.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None, default=None
            Rows to reconstruct by folding them in (as :meth:`transform`).
            None reconstructs the training matrix from the learned row
            factors: ``U Vᵀ`` (+ biases), unscaled.

        Returns
        -------
        X_hat : ndarray of shape (n_samples, n_valid_features)
            The reconstruction, in the units of ``X``, without the
            all-missing columns of the training data.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_mc import SGDMFImputer
        >>> A = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
        >>> imputer = SGDMFImputer(rank=1, alpha=0.0, biases=False, scaling="none",
        ...                        optimizer="sgd", learning_rate=0.1,
        ...                        alpha_decay=0.95, max_iter=300,
        ...                        early_stopping=False, random_state=0).fit(A)
        >>> bool(np.abs(imputer.reconstruct() - A).max() < 1e-3)
        True
        """
        check_is_fitted(self)
        if X is None:
            scaled = self.row_factors_ @ self.components_
            scaled += self.intercept_ + self.column_bias_ + self.row_bias_[:, None]
        else:
            X = self._validate_input(X, reset=False)[:, self._valid_mask]
            scaled = self._run_transform(X, ~np.isnan(X))
        return scaled * self._scale_factor + self._scale_shift


def _penalty_label(alpha: float) -> str:
    """The current penalty for the progress display (``~0`` once negligible)."""
    return f"{alpha:.2g}" if alpha > 1e-12 else "~0"


def _steps_per_epoch(nnz: int, batch_size) -> int:
    """Optimiser steps in one epoch (1 for full batch)."""
    if batch_size is None or batch_size >= nnz:
        return 1
    return math.ceil(nnz / batch_size)


def _check_interval(on_path: bool, decay: float, steps: int = 1) -> int:
    """Epochs between two held-out checks: one per 10 % fall of the penalty.

    Early in the path the penalty still holds the factors near zero while the
    biases fit, so the held-out error may first rise; patience counted in
    steps of the path (``n_iter_no_change`` checks) rather than in epochs keeps
    early stopping from ending the fit before the factors grow.
    """
    if not on_path or decay >= 1:
        return 1
    return max(1, math.ceil(math.ceil(math.log(0.9) / math.log(decay)) / steps))


class _Stalled:
    """``stop_fn`` for the path: ``error()`` stalls for ``patience`` checks.

    The training loop's rule (relative improvement ``tol`` over the best value
    so far) applied every ``interval`` epochs from epoch ``start`` on, when
    the path has all but ended and the objective no longer moves with it.
    """

    def __init__(self, error, interval, tol, patience, start):
        self.error, self.interval, self.start = error, interval, start
        self.tol, self.patience = tol, patience
        self.best, self.no_change = float("inf"), 0

    def __call__(self, epoch):
        if epoch < self.start or epoch % self.interval:
            return False
        value = self.error()
        if value < self.best - self.tol * abs(self.best):
            self.no_change = 0
        else:
            self.no_change += 1
        self.best = min(self.best, value)
        return self.no_change >= self.patience


def _path_end(decay: float) -> int:
    """Epochs after which the path has covered 99.9 % of its way to ``alpha``."""
    if decay >= 1:
        return 0
    return math.ceil(math.log(1e-3) / math.log(decay))


def _check_not_diverged(result, start_validation, scale):
    """Fail loudly when the fit ends far worse than it started.

    A learning rate that is too large for Adam rarely overflows: the loss jumps
    to large finite values and stalls there, which the training loop's
    divergence guard (non-finite or exploding losses) may not catch. The
    starting point (near-zero factors) predicts every entry by the biases, so a
    fit that ends at twice its starting error has failed, unless both are tiny
    against the data's mean square ``scale`` (an exact fit from the start,
    e.g. a single row, moves only by rounding noise).
    """
    if start_validation is not None and result.validation_loss:
        end, start = min(result.validation_loss), start_validation
    elif result.train_loss:
        # the state after the last step against the first epoch's loss
        end, start = result.final_loss, result.train_loss[0]
    else:  # pragma: no cover - train runs at least one epoch
        return
    if not end <= _FAILED_FIT_FACTOR * max(start, _FAILED_FIT_FLOOR * scale):
        raise DivergenceError(
            f"the fit ended with a loss of {end:.3g}, worse than {start:.3g} at the "
            f"start (learning rate at the end: {result.learning_rate:.3g}); the "
            "optimisation diverged: use a smaller learning_rate."
        )


class _Factors:
    """Parameters of the biased factorisation, optionally rescaled for SGD.

    For plain SGD on the mean loss, the curvature felt by a row factor is about
    ``1 / n_rows`` of that felt by the predictions, so a size-independent step
    needs row parameters stored divided by ``sqrt(n_rows)`` (columns likewise);
    Adam and RMSprop are invariant to such rescaling and use scale 1.
    """

    def __init__(self, pu, pv, mu, pb, pc, su, sv, biases):
        self.pu, self.pv, self.mu, self.pb, self.pc = pu, pv, mu, pb, pc
        self.su, self.sv, self.biases = su, sv, biases

    @classmethod
    def initialise(
        cls, rows, cols, vals, shape, rank, biases, init, rescale, device, dtype, gen
    ):
        n_rows, n_cols = shape
        mu = torch.zeros((), dtype=dtype, device=device)
        residual = vals
        if biases and vals.numel() > 0:
            mu = vals.mean()
            residual = vals - mu
        noise = torch.randn((n_rows + n_cols, rank), generator=gen, dtype=dtype)
        noise = _INIT_STD * noise.to(device)
        # Rows and columns without training entries never get a gradient: they
        # start (and stay) at zero, so their completion is the biases alone.
        seen = torch.cat(
            [
                torch.bincount(rows, minlength=n_rows),
                torch.bincount(cols, minlength=n_cols),
            ]
        )
        noise *= (seen > 0).to(dtype)[:, None]
        U, V = noise[:n_rows], noise[n_rows:]
        if init == "spectral":
            U0, V0 = _spectral(
                *_on_sparse_device(rows, cols, residual), shape, rank, gen
            )
            U, V = U + U0.to(device), V + V0.to(device)
        su = float(np.sqrt(n_rows)) if rescale else 1.0
        sv = float(np.sqrt(n_cols)) if rescale else 1.0
        pb = torch.zeros(n_rows, dtype=dtype, device=device)
        pc = torch.zeros(n_cols, dtype=dtype, device=device)
        params = [U / su, V / sv, mu, pb, pc]
        params = [p.clone().requires_grad_(True) for p in params]
        if not biases:
            for p in params[2:]:
                p.requires_grad_(False)
        return cls(*params, su, sv, biases)

    def entry_loss(self, rows, cols, vals, alpha):
        """Squared error plus the penalty ``alpha`` of each entry's factors."""
        u, w, pred = self.predict(rows, cols)
        loss = (vals - pred).square()
        if alpha > 0:
            penalty = u.square().sum(1) + w.square().sum(1)
            if self.biases:
                penalty = penalty + self.row_bias(rows).square()
                penalty = penalty + self.col_bias(cols).square()
            loss = loss + alpha * penalty
        return loss

    @torch.no_grad()
    def objective(self, rows, cols, vals, alpha=0.0):
        """Mean of :meth:`entry_loss` over the given entries, in bounded chunks."""
        total = 0.0
        for start in range(0, vals.numel(), _AUTO_BATCH):
            part = slice(start, start + _AUTO_BATCH)
            loss = self.entry_loss(rows[part], cols[part], vals[part], alpha)
            total += float(loss.sum())
        return total / max(vals.numel(), 1)

    def zero_factors(self):
        with torch.no_grad():
            self.pu.zero_()
            self.pv.zero_()

    def residual(self, rows, cols, vals):
        """Observed values minus the initial global offset."""
        return vals - self.mu.detach() if self.biases else vals

    def parameters(self):
        return [self.pu, self.pv, self.mu, self.pb, self.pc]

    def row_bias(self, r):
        return self.pb[r] * self.su

    def col_bias(self, c):
        return self.pc[c] * self.sv

    def predict(self, r, c):
        u = self.pu[r] * self.su
        w = self.pv[c] * self.sv
        pred = (u * w).sum(1)
        if self.biases:
            pred = pred + self.mu + self.row_bias(r) + self.col_bias(c)
        return u, w, pred

    def export(self):
        return (
            (self.pu * self.su).detach(),
            (self.pv * self.sv).detach(),
            self.mu.detach(),
            (self.pb * self.su).detach(),
            (self.pc * self.sv).detach(),
        )


def _on_sparse_device(*tensors):
    """The tensors, moved to the CPU where the device lacks sparse kernels (MPS)."""
    if tensors[0].device.type == "mps":
        return tuple(t.cpu() for t in tensors)
    return tensors


def _index_pair(rows, cols):
    """``torch.stack([rows, cols])``, or the (2, n) tensor they are the rows of."""
    n = rows.numel()
    if (
        rows.is_contiguous()
        and cols.is_contiguous()
        and rows.untyped_storage().data_ptr() == cols.untyped_storage().data_ptr()
        and rows.storage_offset() == 0
        and cols.storage_offset() == n
    ):
        return rows.as_strided((2, n), (n, 1))
    return torch.stack([rows, cols])


def _sparse(rows, cols, vals, shape):
    """A coalesced sparse COO tensor of the entries.

    The observed entries come sorted row-major and unique, which is the
    coalesced layout: they are then flagged as such instead of being sorted
    again (``coalesce`` would copy the indices and values and sort them).
    The training entries' indices are already one (2, nnz) tensor, which is
    used without a copy.
    """
    ahead = rows[1:] > rows[:-1]
    sorted_unique = bool(
        (ahead | ((rows[1:] == rows[:-1]) & (cols[1:] > cols[:-1]))).all()
    )
    del ahead
    S = torch.sparse_coo_tensor(
        _index_pair(rows, cols),
        vals,
        shape,
        check_invariants=True,
        is_coalesced=sorted_unique,
    )
    return S if sorted_unique else S.coalesce()


def _zero_threshold(rows, cols, vals, shape, generator):
    """Smallest penalty at which all-zero factors are a local minimum.

    The penalty of observed entry (i, j) is ``alpha (|U_i|² + |V_j|²)``, i.e.
    ``alpha uᵀ D_r u + alpha vᵀ D_c v`` in total with ``D_r``, ``D_c`` the
    diagonal matrices of the rows' and columns' observation counts; zero
    factors stop being stable once ``2 uᵀ P_Ω(X) v`` beats it, at
    ``alpha = ‖D_r^{-1/2} P_Ω(X) D_c^{-1/2}‖₂``. This is where the
    regularisation path starts (SoftImpute's ``λ_max`` for this penalty).
    """
    if vals.numel() == 0:
        return 0.0
    n_rows, n_cols = shape
    row_count = torch.bincount(rows, minlength=n_rows).to(vals.dtype)
    col_count = torch.bincount(cols, minlength=n_cols).to(vals.dtype)
    weight = row_count[rows]  # in place below: one temporary, not three
    weight *= col_count[cols]
    weighted = vals / weight.sqrt_()
    del weight
    q = min(3, n_rows, n_cols)
    _, S, _ = low_rank_svd(_sparse(rows, cols, weighted, shape), q, 6, generator)
    return float(S[0])


def _spectral(rows, cols, vals, shape, rank, generator):
    """Balanced factors of the top singular triplets of the rescaled sample.

    ``P_Ω(X) · n_rows·n_cols / nnz`` is an unbiased estimate of ``X`` under
    uniform sampling; its truncated SVD ``P S Qᵀ`` gives ``U = P S½``,
    ``V = Q S½``. The randomised SVD only multiplies the sparse matrix by thin
    dense ones.
    """
    n_rows, n_cols = shape
    nnz = vals.numel()
    if nnz == 0:
        zeros = torch.zeros(
            (n_rows + n_cols, rank), dtype=vals.dtype, device=vals.device
        )
        return zeros[:n_rows], zeros[n_rows:]
    sample = _sparse(rows, cols, vals * (n_rows * n_cols / nnz), shape)
    q = min(rank + 4, n_rows, n_cols)
    P, S, Q = low_rank_svd(sample, q, 4, generator)
    P, S, Q = P[:, :rank], S[:rank], Q[:, :rank]
    # With few samples the noise inflates the singular values (the rescaled
    # sample is far from low rank): shrink them by the least-squares factor on
    # the observed entries, so the start never fits them worse than zero does.
    pred = ((P[rows] * S) * Q[cols]).sum(1)
    shrink = (vals @ pred) / (pred @ pred).clamp_min(torch.finfo(vals.dtype).tiny)
    root = (S * shrink).clamp_min(0).sqrt()
    return P * root, Q * root
