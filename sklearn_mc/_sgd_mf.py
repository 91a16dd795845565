"""Matrix factorisation by stochastic gradients on the observed entries (Funk-SVD).

The estimator; the factorisation's parameters and the fold-in of new rows are
in ``_sgd_mf_factors``, the penalty path with its start and stopping rules in
``_sgd_mf_path``.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._callbacks import Plateau, Schedule
from ._gradient import (
    BATCH_SIZE_CONSTRAINT,
    GradientTrainedImputer,
    fill_parameter_docs,
)
from ._observed import trim_heap
from ._optim import TrainResult, train
from ._registry import _iters
from ._sgd_mf_factors import (
    _AUTO_BATCH,
    _Factors,
    _fold_in_rows,
    _hold_out,
    _nothing_to_fit,
)
from ._sgd_mf_path import (
    _check_not_diverged,
    _path_start,
    _PenaltyPath,
    _steps_per_epoch,
)
from ._torch import (
    compute_dtype,
    draw_seed,
    fit_generator,
    make_generator,
    to_numpy,
    to_tensor,
)

#: ``scaling="auto"`` reads data with at most this many distinct observed
#: values as ratings on one scale (no per-column standardisation).
_RATING_LEVELS = 10


@fill_parameter_docs
class SGDMFImputer(GradientTrainedImputer):
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
    {learning_rate}
    {batch_size}
        The items are the observed entries; ``"auto"`` is full batch up to
        65,536 observed entries and mini-batches of that size beyond.
    {max_iter}
    {tol}
        On the path the training objective is only judged once the path has
        covered 99.9 % of its way to ``alpha`` (before that it moves with the
        penalty and may even rise as the factors grow).
    {early_stopping}
        Keeping the best factors also keeps their point on the path
        (``alpha_``).
    {validation_fraction}
    {n_iter_no_change}
        On the path the monitored error is checked each time the penalty has
        fallen by 10 % (every 11 epochs at ``alpha_decay=0.99``), because
        while the penalty is still strong the held-out error can rise for a
        while before the factors grow; without the path, every epoch.
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
    {missing_values}
    {keep_empty_features}
    {add_indicator}
    {min_value}
    {max_value}
    {device}
    {random_state}
    {verbose}

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
    Memory: training holds the observed entries as triplets (16 bytes each:
    int32 indices where the shape allows, float64 values) and the parameters
    with their optimiser state and snapshots,
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
    dense copy, and releases the scaled values it was handed once its
    training / held-out split holds its own. Bound, per observed entry: the
    kept entries (16 bytes, a fitted attribute), the training / held-out
    triplets (16 bytes) and, transient, the weighted sample and its int64
    indices for the spectral norm that starts the path (about 32 bytes,
    shared with its transpose). Freed entry-sized temporaries are handed
    back to the system (``malloc_trim``) between the stages and epochs, so
    that the C allocator's retention does not add up. Measured figures are
    on the method page of the User Guide. Time per epoch is
    ``O(nnz · rank)``.

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
    # Listing order, --fast settings and fit-time model: see sklearn_mc._registry.
    _cli_order = 30
    _fast_params: dict = {"max_iter": 50}
    _iterative = True

    @staticmethod
    def _fit_cost(params: dict, n_rows: int, n_cols: int, n_observed: int) -> float:
        return _iters(params, 1000) * (1.5e-2 + 3e-6 * n_observed)

    _parameter_constraints: dict = {
        **GradientTrainedImputer._parameter_constraints,
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
        "batch_size": [*BATCH_SIZE_CONSTRAINT, StrOptions({"auto"})],
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
        self.batch_size = batch_size
        self.scaling = scaling
        super().__init__(
            learning_rate=learning_rate,
            max_iter=max_iter,
            tol=tol,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            missing_values=missing_values,
            keep_empty_features=keep_empty_features,
            add_indicator=add_indicator,
            min_value=min_value,
            max_value=max_value,
            device=device,
            random_state=random_state,
            verbose=verbose,
        )

    _supports_sparse = True
    _dense_fit_from_entries = True
    #: the training layout keeps int32 indices: no int64 copy of them.
    _compact_entries = True

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
        shape = entries.shape
        rank = min(self.rank, *shape)
        # Every random draw comes from the generator the base opened for this fit.
        init_gen = fit_generator()
        seed = draw_seed(init_gen)
        rows = torch.as_tensor(entries.rows, device=device)
        cols = torch.as_tensor(entries.cols, device=device)
        vals = to_tensor(entries.values, device, dtype)
        (t_rows, t_cols, t_vals), held_out = _hold_out(
            rows, cols, vals, shape, self.early_stopping, self.validation_fraction, seed
        )
        nnz = t_vals.numel()
        trim_heap(nnz)  # the split's temporaries
        # What the checks below need of all values, then the handed-over
        # values are released (the base's scaled copy: the training and
        # held-out entries hold their own), one array of nnz values less.
        extremes = torch.stack(vals.aminmax()) if vals.numel() else vals
        mean_square = float(vals.square().mean())
        del vals
        if entries is not getattr(self, "_train_entries", None):
            # The fit's own scaled copy (the base's _dense_fit_from_entries,
            # _sparse_path.fit_sparse): nothing reads it after this.
            entries.values = None
        model = _Factors.initialise(
            t_rows,
            t_cols,
            t_vals,
            shape,
            rank,
            self.biases,
            self.init,
            self.optimizer == "sgd",
            device,
            dtype,
            init_gen,
        )
        alpha_start = _path_start(
            model, t_rows, t_cols, t_vals, shape, init_gen, self.alpha, self.alpha_init
        )
        path = _PenaltyPath(
            float(self.alpha),
            alpha_start,
            self.alpha_decay,
            _steps_per_epoch(nnz, self._batch_size(nnz)),
        )
        # The split's and the path start's entry-sized temporaries are freed:
        # return their pages before training allocates its own.
        trim_heap(nnz)

        def loss_fn(idx):
            if idx is None:
                r, c, v = t_rows, t_cols, t_vals
            else:
                r, c, v = t_rows[idx], t_cols[idx], t_vals[idx]
            return model.entry_loss(r, c, v, path.current).mean()

        def validation_fn():
            return model.objective(*held_out)

        if _nothing_to_fit(model, extremes):
            # Nothing beyond the offset to fit (a single standardised row, a
            # constant matrix, up to rounding): zero factors are exact, and
            # steps of a fixed size from an exact start would only add noise.
            model.zero_factors()
            result = TrainResult(n_iter=1, train_loss=[0.0])
            result.learning_rate = self.learning_rate
        else:
            result = self._train(
                model, loss_fn, nnz, validation_fn if held_out else None, path, seed
            )
            _check_not_diverged(result, result.start_validation_loss, mean_square)
        self.rank_ = rank
        result.export(self)
        self.n_iter_ = max(result.n_iter, 1)
        self.learning_rate_ = result.learning_rate
        # The factors kept are those after epoch best_iter (early stopping) or
        # the last one; their penalty is the one the fold-in must use.
        kept_epoch = result.best_iter if held_out else result.n_iter
        self.alpha_ = path.at(max(kept_epoch - 1, 0))
        self._store(model)

    def _train(self, model, loss_fn, nnz, validation_fn, path, seed):
        """The training loop, with the path as a schedule and its stopping rule.

        With held-out entries the loop's early stopping decides (checked at
        the path's interval); without, on the path, the loop's plateau rule
        judged only once the path is all but over; otherwise the loop's
        plateau rule on the training loss every epoch.
        """
        interval = path.check_interval()
        # Each epoch starts without the C allocator's retention of the last
        # one's batch temporaries (see trim_heap; it changes no number).
        callbacks = [Schedule(path), Schedule(lambda epoch: trim_heap(nnz))]
        after_path = validation_fn is None and path.on_path
        if after_path:
            callbacks.append(
                Plateau(
                    tol=self.tol,
                    patience=self.n_iter_no_change,
                    every=interval,
                    start=path.end_epoch(),
                )
            )
        return train(
            model.parameters(),
            loss_fn,
            n_samples=nnz,
            batch_size=self._batch_size(nnz),
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            generator=make_generator(seed),
            optimizer=self.optimizer,
            tol=self.tol,
            # After the path, the plateau rule above replaces the loop's own
            # (which would judge the moving objective of the path).
            n_iter_no_change=None if after_path else self.n_iter_no_change,
            validation_fn=validation_fn,
            validation_interval=interval,
            status_fn=path.label,
            verbose=self.verbose,
            desc=type(self).__name__,
            callbacks=callbacks,
        )

    def _store(self, model):
        """The fitted factors, as tensors (fold-in) and arrays (attributes)."""
        with torch.no_grad():
            U, V, mu, b, c = model.export()
        self._V, self._mu, self._c = V, mu, c
        self._U, self._b = U, b
        self.components_ = to_numpy(V).T.copy()
        self.row_factors_ = to_numpy(U)
        self.intercept_ = float(mu)
        self.row_bias_ = to_numpy(b)
        self.column_bias_ = to_numpy(c)

    def _batch_size(self, nnz):
        if self.batch_size == "auto":
            return None if nnz <= _AUTO_BATCH else _AUTO_BATCH
        return self.batch_size

    # ------------------------------------------------------------ transform
    def _transform(self, X, mask):
        # The ridge solve of each row's factor with V fixed (_sgd_mf_factors).
        return _fold_in_rows(
            X, mask, self._V, self._mu, self._c, self.biases, self.alpha_
        )

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
