"""Two-branch deep matrix factorisation (DMF) and its discrete variant DMF-D.

Nguyen, Tsiligianni and Deligiannis, "Matrix Factorization via Deep Learning":
a row branch maps a row vector to a latent factor, a column branch maps a
column vector to another, and the prediction is their cosine similarity. As the
inputs are whole rows and columns of the matrix, new rows and new columns are
completed by a forward pass, without retraining.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._callbacks import HalveOnPlateau
from ._dmf_branch import _by_column, _csr, _Sparse, build_branches
from ._dmf_complete import DMFCompletion, complete_blocks
from ._dmf_discrete import _Quantiser
from ._dmf_scaling import range_scaling
from ._dmf_side import _cosine
from ._dmf_training import Objective, build_sides
from ._gradient import (
    BATCH_SIZE_CONSTRAINT,
    GradientTrainedImputer,
    fill_parameter_docs,
)
from ._mean_blend import (
    MEAN_SHRINKAGE_CONSTRAINT,
    blend_weights,
    shrinkage_rule,
    store_blend_weights,
    warn_shrunk_to_mean,
)
from ._observed import trim_heap
from ._optim import train
from ._registry import _iters
from ._torch import (
    compute_dtype,
    draw_seed,
    make_generator,
    to_numpy,
    to_tensor,
)
from .datasets import _check_levels
from .model_selection import split_indices

# DMFCompletion: the type complete() returns, importable from here as before
__all__ = ["DMFCompletion", "DMFImputer"]

#: rows (of a dense input) pushed through a branch at once in ``transform``,
#: which bounds its working memory.
_CHUNK = 4096


#: above this many observed entries the branches are trained in float32 (as
#: DeepMF does): halves the weight-sized state and the entries; the fitted
#: factors and every output stay float64.
_FLOAT32_ENTRIES = 250_000
#: ``hidden_layer_sizes="auto"``: one hidden layer of this width, capped by the
#: data (see :meth:`DMFImputer._hidden_sizes`).
_MAX_WIDTH = 256
#: ``batch_size="auto"``: 1024 entries, or more on large tables so that an
#: epoch has at most this many steps (each step updates every weight, so a
#: step costs ``O((n_samples + n_features) · width)`` whatever the batch).
_MAX_STEPS = 128
_MIN_BATCH = 1024
#: early stopping: Adam's step size is halved after ``n_iter_no_change //
#: _LR_PATIENCE_DIV`` (at least 1) held-out checks without a gain, and training
#: ends (early stopping) at such a plateau once it has been halved
#: ``_LR_HALVINGS`` times. A fixed step keeps the held-out error swinging from
#: epoch to epoch around its level, so that a best epoch is a lucky draw and
#: the patience runs long; each halving lets it settle lower.
_LR_PATIENCE_DIV = 5
_LR_HALVINGS = 3
#: ... only with at least this many held-out entries. A plateau of the held-out
#: error means the step is too large only when that error is measured on many
#: entries; on a small table (tens to thousands of held-out entries) its swings
#: are the sampling noise of the hold-out itself, and halving then stopping cut
#: training short (tabular benchmark: iris and wine at 50 % MCAR fell to the
#: mean imputation's error with the rule on every fit).
_LR_MIN_HELD_OUT = 25_000


@fill_parameter_docs
class DMFImputer(GradientTrainedImputer):
    """Deep matrix factorisation with two branches and a cosine output (DMF).

    A row branch maps each row vector ``X_i`` (its observed entries, missing
    entries as 0) through fully connected layers to a latent factor ``U_i``; a
    column branch maps each column vector ``Y_j`` to ``V_j``; the entry
    ``(i, j)`` is predicted as the cosine similarity of ``U_i`` and ``V_j``.
    Entries are mapped linearly onto [-1, 1] (see ``scaling``) for training
    and back afterwards, so the cosine's range is the data's. The loss is the
    mean squared error on the observed entries plus ``alpha`` times the
    squared norms of the weights, minimised with Adam on mini-batches of
    observed entries; each batch runs the branches only on the rows and
    columns it touches.

    Because the inputs are whole rows and columns, the fitted model extends to
    data it never saw without retraining (the paper's areas of Fig. 2):
    :meth:`transform` completes new rows (area II) from their entries over the
    training columns, and :meth:`complete` also completes new columns (area
    III, from their entries over the training rows) and the new rows' entries
    on the new columns (area IV).

    With ``levels`` set (DMF-D), the cosine passes through a smooth quantiser
    ``G_{λ,b}`` whose boundaries ``b`` are learned together with the network
    and whose slope ``λ`` grows from small to large during training, and the
    predictions are exactly on the levels.

    Read more in the :ref:`User Guide <dmf>`.

    Parameters
    ----------
    hidden_layer_sizes : "auto" or tuple of int, default="auto"
        Widths of the hidden layers of each branch (both branches alike). The
        paper gives none; one wide layer before the latent layer is what
        worked on rating matrices. ``"auto"``: one layer of width
        ``min(256, max(latent_dim, min(n_samples, n_features)))``: a matrix's
        rank is at most ``min(n_samples, n_features)``, and a wider layer
        only costs memory (the column branch's first layer has ``n_samples
        x width`` weights).
    latent_dim : int, default=64
        Size of the latent factors ``U_i`` and ``V_j``.
    activation : {"relu", "tanh"}, default="relu"
        Nonlinearity after every layer but the last.
    alpha : float, default=1e-4
        Weight of the L2 penalty on the weights of both branches (the paper's
        γ), added to the mean squared error.
    {learning_rate}
        The update rule is Adam.
    batch_size : "auto", int or None, default="auto"
        Observed entries per gradient step; None means full batch.
        ``"auto"``: 1024, or more on large tables so that an epoch has at
        most 128 steps (each step updates every weight, ``(n_samples +
        n_features) x width`` of them, whatever the batch's size).
    {max_iter}
        The items are the observed entries.
    {tol}
    {early_stopping}
        The held-out entries are not inputs during training; they join the
        row and column vectors afterwards.
    {validation_fraction}
    {n_iter_no_change}
        Counted in epochs. With early stopping on at least 25,000 held-out
        entries (a rating matrix), Adam's step is also halved after
        ``max(1, n_iter_no_change // 5)`` checks without improvement, and
        training stops at such a plateau once the step has been halved three
        times (:class:`~sklearn_mc._callbacks.HalveOnPlateau`).
    leave_target_out : bool, default=True
        Remove the entry being predicted from the row and column vectors fed
        to the branches during training, so that training sees what
        prediction sees: a missing entry is never part of its own inputs.
        ``False`` is the paper's setting (the target is inside its inputs);
        ``True`` gave lower held-out errors on rating matrices (see the
        benchmark) at the same cost.
    levels : array-like of float or None, default=None
        The allowed values (e.g. ``[1, 2, 3, 4, 5]``): strictly increasing, at
        least two. None gives continuous outputs (DMF); otherwise DMF-D, whose
        imputed entries are exactly on the levels.
    scaling : {"auto", "global", "column"}, default="auto"
        How entries are mapped onto [-1, 1], the cosine's range.
        ``"global"``: one affine map of the observed range (with ``levels``:
        of the levels' span too), the paper's choice, right for ratings and
        images. ``"column"``: each column's observed range onto [-1, 1], for
        tables whose columns have different units. ``"auto"``: ``"global"``
        when ``levels`` is set or the median column range is at least half
        of the overall range, ``"column"`` otherwise.
    boundary_penalty : float, default=0.01
        DMF-D only: weight γ₂ of ``||b - b̃||²``, which keeps the learned
        boundaries ``b`` near the uniform quantiser's ``b̃`` (midpoints
        between levels), in the [-1, 1] scale.
    slope_range : tuple of float, default=(4.0, 400.0)
        DMF-D only: the slope λ of the quantiser's sigmoids at the first epoch
        and from epoch ``anneal_iter`` on (growing geometrically in between),
        in units of one over the mean level spacing: at 4 a step between two
        levels is still a gentle ramp, at 400 it is a jump.
    anneal_iter : int, default=20
        DMF-D only: epochs over which λ grows from the first to the second
        value of ``slope_range``.
    mean_shrinkage : "auto", float in [0, 1], bool or None, default="auto"
        How far each completed entry is moved from the network's prediction
        ``dmf_j`` toward the column's observed mean ``mean_j`` (both in the
        [-1, 1] scale): column ``j`` is completed with ``mean_j + w_j
        (dmf_j - mean_j)``, ``w_j`` in ``blend_weights_``, before DMF-D's
        quantisation. ``"auto"`` (or True): ``w_j`` is chosen at fit by least
        squares on the held-out entries of early stopping (predicted by the
        best epoch's model, which did not see them), regularised toward 1
        for columns with few of them, so that a column the network predicts
        worse than its mean is completed nearer the mean; columns shrunk all
        the way (``w_j = 0``) are named in a warning. With ``scaling_ =
        "global"`` (ratings: a few held-out entries per item) one weight,
        fitted on all held-out entries, serves every column. Without held-out
        entries (``early_stopping=False``) ``w_j = 1``. A float ``s``:
        ``w_j = 1 - s`` in every column. None, False or 0: the network's
        output as is. New columns (:meth:`complete`) always have ``w = 1``:
        the model has no mean for them.
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
    row_factors_ : ndarray of shape (n_samples, latent_dim)
        Latent factors of the training rows (from all their observed entries).
    column_factors_ : ndarray of shape (n_features_out, latent_dim)
        Latent factors of the training columns (``col_factors_`` is a
        deprecated alias).
    hidden_layer_sizes_ : tuple of int
        The hidden widths used (``hidden_layer_sizes`` with ``"auto"``
        resolved).
    batch_size_ : int
        Entries per step used (``batch_size`` resolved).
    scaling_ : {"global", "column"}
        The scaling used (``scaling`` with ``"auto"`` resolved).
    levels_ : ndarray or None
        The validated ``levels``.
    blend_weights_ : ndarray of shape (n_features_in_,)
        Weight ``w_j`` of the network's prediction in column ``j`` (1: the
        network's output, 0: the column mean), see ``mean_shrinkage``; NaN
        for columns empty at fit.
    boundaries_ : ndarray of shape (len(levels) - 1,) or None
        Learned inner quantisation boundaries, in the units of ``X``.
    loss_curve_ : list of float
        Training loss of each epoch (in the [-1, 1] scale).
    validation_loss_curve_ : list of float
        Mean squared error on the held-out entries after each epoch (of the
        hard-quantised predictions for DMF-D); empty without early stopping.
    n_iter_ : int
        Number of epochs run.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string names.

    See Also
    --------
    SGDMFImputer : Plain low-rank factorisation, fitted by stochastic gradients.

    Notes
    -----
    **Time.** A mini-batch step encodes the rows and columns it touches.
    Where those vectors hold few entries (the short side) they are encoded
    exactly at every step; where they would hold many (the columns of a
    tall table: each column has an entry in almost every row) the side's
    first-layer products ``S W`` are cached and refreshed every few steps
    (at most 16 times an epoch), and the gradient that reaches them is
    pushed back to ``W`` at the refresh (one sparse product; a delay of a
    few steps, as in asynchronous SGD). A branch whose inputs are far longer
    than the vectors it encodes are many (the column branch of a tall
    table) sees them through a fixed random projection instead (see the
    User Guide), so nothing needs a cache there. A step costs
    ``O(batch_size · width · latent_dim)`` plus
    the update of every weight, ``O((n_samples + n_features) · width)``,
    which ``batch_size="auto"`` bounds to 128 steps an epoch; an epoch
    costs ``O(n_observed · width · latent_dim)``: linear in the rows and
    columns. Full batch (``batch_size=None``) is processed in chunks of
    entries under activation checkpointing. Measured times and memory are
    on the method page of the User Guide.

    **Memory.** ``O(n_observed + (n_samples + n_features) · width)`` with
    ``width = hidden_layer_sizes_[0]`` (for a projected branch, its input
    count times the width once, for the fixed projection, instead of the
    weight-sized state). No dense copy of the matrix is made during ``fit``
    (the base class hands over the observed entries; ``transform`` works on
    the dense rows it gets, in chunks). Bound: about ``10 × b ×
    (n_samples + n_features) × width`` bytes of weight-sized state (``b``
    = 4 above 250,000 observed entries, where training is in float32, else
    8; the weights, their gradients, Adam's two moments, the training
    loop's snapshots, the cached side's delayed gradient), plus about 100
    bytes per observed entry (the caller's entries, the training entries
    grouped by row and by column, the held-out triplets, the scaled values)
    and the output. The automatic width keeps ``(n_samples + n_features)
    × width`` below ``2 × n_samples × n_features``, and on a tall table the
    projected column branch replaces its ``n_samples × width`` learned
    weights by the fixed projection (one copy).

    **Sparse input.** ``scipy.sparse`` matrices are accepted: stored entries
    are observed (explicit zeros are ratings of 0), absent entries are
    unknown (unlike scikit-learn's imputers, which read them as 0). Dense
    input goes through the same observed-entries path, so both give the same
    model.

    During training a row's input vector contains the entry being predicted,
    as in the paper; at prediction time a missing entry is, by definition, not
    in it. Early stopping on entries that are not inputs guards against the
    resulting over-fit.

    References
    ----------
    D. M. Nguyen, E. Tsiligianni and N. Deligiannis, "Matrix Factorization via
    Deep Learning", and "Extendable neural matrix completion", ICASSP 2018, and
    "Learning discrete matrix factorization models", IEEE Signal Processing
    Letters 25(5), 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mc import DMFImputer
    >>> from sklearn_mc.datasets import make_ratings
    >>> X = make_ratings(80, 40, density=0.3, random_state=0)
    >>> imp = DMFImputer(hidden_layer_sizes=(16,), latent_dim=4, max_iter=5,
    ...                  levels=[1, 2, 3, 4, 5], random_state=0)
    >>> X_filled = imp.fit_transform(X)
    >>> set(np.unique(X_filled)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    True
    >>> new_cols = X[:, :5]  # five columns seen as new items
    >>> imp.complete(X_new_cols=new_cols).new_cols.shape
    (80, 5)
    """

    _cli_name = "dmf"
    _summary = "two-branch deep MF, cosine output (ratings, new users/items)"
    # Listing order, --fast settings and fit-time model: see sklearn_mc._registry.
    _cli_order = 70
    _fast_params: dict = {"max_iter": 10}
    _iterative = True

    @staticmethod
    def _fit_cost(params: dict, n_rows: int, n_cols: int, n_observed: int) -> float:
        # Each mini-batch encodes whole rows and columns: an epoch grows as m^2 n.
        return _iters(params, 200) * (5e-2 + 5e-7 * n_rows * n_rows * n_cols)

    _parameter_constraints: dict = {
        **GradientTrainedImputer._parameter_constraints,
        "hidden_layer_sizes": [StrOptions({"auto"}), "array-like"],
        "latent_dim": [Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions({"relu", "tanh"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), *BATCH_SIZE_CONSTRAINT],
        "leave_target_out": ["boolean"],
        "levels": ["array-like", None],
        "scaling": [StrOptions({"auto", "global", "column"})],
        "boundary_penalty": [Interval(numbers.Real, 0, None, closed="left")],
        "slope_range": [tuple, list],
        "anneal_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "mean_shrinkage": MEAN_SHRINKAGE_CONSTRAINT,
    }

    def __init__(
        self,
        hidden_layer_sizes="auto",
        latent_dim=64,
        *,
        activation="relu",
        alpha=1e-4,
        learning_rate=1e-3,
        batch_size="auto",
        max_iter=200,
        tol=1e-4,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=10,
        leave_target_out=True,
        levels=None,
        scaling="auto",
        boundary_penalty=0.01,
        slope_range=(4.0, 400.0),
        anneal_iter=20,
        mean_shrinkage="auto",
        missing_values=np.nan,
        keep_empty_features=False,
        add_indicator=False,
        min_value=-np.inf,
        max_value=np.inf,
        device="auto",
        random_state=None,
        verbose=0,
    ):
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
        self.hidden_layer_sizes = hidden_layer_sizes
        self.latent_dim = latent_dim
        self.activation = activation
        self.alpha = alpha
        self.batch_size = batch_size
        self.leave_target_out = leave_target_out
        self.levels = levels
        self.scaling = scaling
        self.boundary_penalty = boundary_penalty
        self.slope_range = slope_range
        self.anneal_iter = anneal_iter
        self.mean_shrinkage = mean_shrinkage

    # ------------------------------------------------------------------ fit
    def _check_extra_params(self):
        if isinstance(self.hidden_layer_sizes, str):
            hidden = None  # "auto": resolved in fit, from the data's shape
        else:
            hidden = self._check_sizes()
        slope = np.asarray(self.slope_range, dtype=np.float64)
        if slope.shape != (2,) or not (0 < slope[0] <= slope[1] < np.inf):
            raise ValueError(
                "slope_range must be (start, end) with 0 < start <= end, got "
                f"{self.slope_range!r}."
            )
        return (
            hidden,
            None if self.levels is None else _check_levels(self.levels),
            slope,
        )

    def _check_sizes(self):
        sizes = np.asarray(self.hidden_layer_sizes, dtype=object)
        if sizes.ndim != 1 or not all(
            isinstance(s, numbers.Integral) and s >= 1 for s in sizes
        ):
            raise ValueError(
                "hidden_layer_sizes must be a sequence of positive integers, got "
                f"{self.hidden_layer_sizes!r}."
            )
        return [int(s) for s in self.hidden_layer_sizes]

    def _hidden_sizes(self, hidden, n_rows, n_cols, n_observed):
        """The hidden widths: as given, or for ``"auto"`` one layer of
        ``min(256, max(latent_dim, min(n_rows, n_cols)))``.

        The first layers hold ``(n_rows + n_cols) x width`` weights. A
        matrix has rank at most ``min(n_rows, n_cols)``, and the branch that
        encodes the short side's vectors (that many) can map them anywhere
        at that width already; wider only costs memory and time (on a tall
        table, in the long side's first layer).
        """
        if hidden is not None:
            return hidden
        return [min(_MAX_WIDTH, max(int(self.latent_dim), min(n_rows, n_cols)))]

    def _batch(self, n_train):
        """Entries per step (``batch_size``; ``"auto"``: see its doc)."""
        if self.batch_size is None:
            return n_train
        if isinstance(self.batch_size, str):
            return min(n_train, max(_MIN_BATCH, math.ceil(n_train / _MAX_STEPS)))
        return min(int(self.batch_size), n_train)

    _supports_sparse = True
    _dense_fit_from_entries = True
    #: the training layouts take int32 indices as they are (no int64 copy;
    #: keys that combine a row and a column are formed in int64).
    _compact_entries = True

    def _fit(self, entries, mask):
        # Dense input takes the sparse route: its observed entries in row-major
        # order, as from a sparse matrix, so both give the same model (the base
        # hands them over, ``_dense_fit_from_entries``: no dense copy of X).
        self._fit_entries(entries)
        return None

    def _fit_entries(self, entries):
        values = entries.values
        if entries is not getattr(self, "_train_entries", None):
            # the fit's own scaled copy (the base's hand-over, fit_sparse's):
            # taken out, so that _fit_observed can release it once it is a tensor
            entries.values = None
        self._fit_observed(entries.rows, entries.cols, values, entries.shape)

    def _predict_entries(self, rows, cols):
        U = torch.as_tensor(self.row_factors_[rows])
        V = torch.as_tensor(self.column_factors_[cols])
        out = to_numpy(_cosine(U, V)).astype(np.float64, copy=False)
        if self._blend is not None:
            mean, w = self._blend_mean[cols], self._blend[cols]
            out = mean + w * (out - mean)
        if self._scaled_levels is not None:
            out = self._scaled_levels[
                np.searchsorted(self._scaled_boundaries, out, side="right")
            ]
        return out

    def _fit_observed(self, rows_np, cols_np, values, shape):
        """Fit on observed entries ``(rows, cols, values)`` of ``shape``.

        ``values`` are in the [-1, 1] scale of :meth:`_scaling_statistics`.
        """
        hidden, levels, slope = self._check_extra_params()
        device = self._device
        n_rows, n_cols = shape
        dtype = compute_dtype(device)
        if len(rows_np) > _FLOAT32_ENTRIES:
            dtype = torch.float32
        hidden = self._hidden_sizes(hidden, n_rows, n_cols, len(rows_np))
        self.hidden_layer_sizes_ = tuple(hidden)
        seed = draw_seed()

        # the entries: int32 or int64 indices, as handed over
        # (``_compact_entries``), the values scaled onto [-1, 1] by the base
        # (``_scaling_statistics``)
        rows = to_tensor(np.asarray(rows_np), device)
        cols = to_tensor(np.asarray(cols_np), device)
        vals = to_tensor(np.asarray(values, dtype=np.float64), device, dtype)
        values = None  # the hand-over's last reference (see _fit_entries)
        n_obs = rows.numel()
        by_row, held_out = self._split_entries(rows, cols, vals, n_rows, seed)
        # the training entries in by_row's order: its arrays, not copies
        t_rows = by_row.all_vectors()[0]
        train_entries = (t_rows, by_row.indices, by_row.values)

        # the model: two branches (and DMF-D's quantiser), their first layers
        # on the training vectors
        self.row_branch_, self.col_branch_ = build_branches(
            hidden, int(self.latent_dim), self.activation, shape, dtype, device
        )
        branches = (self.row_branch_, self.col_branch_)
        params = [p for branch in branches for p in branch.parameters()]
        quantiser = None
        if levels is not None:
            quantiser = _Quantiser(
                (levels - self._scale_shift[0]) / self._scale_factor[0],
                slope,
                self.anneal_iter,
                device,
                dtype,
            )
            params.append(quantiser.boundaries)
        batch = self._batch(t_rows.numel())
        self.batch_size_ = batch
        sides = build_sides(*branches, by_row, t_rows, shape, batch, self.latent_dim)
        self._cache_intervals = (sides[0].interval, sides[1].interval)

        # the loss: squared error plus the penalties, Adam on mini-batches
        objective = Objective(
            *sides,
            train_entries,
            held_out,
            [w for branch in branches for w in branch.weights()],
            alpha=self.alpha,
            boundary_penalty=self.boundary_penalty,
            quantiser=quantiser,
            leave_target_out=self.leave_target_out,
            n_observed=n_obs,
        )
        sides = by_row = train_entries = t_rows = None  # the objective holds them
        self._train(objective, params, batch, gen=make_generator(seed))

        # the best epoch's model on the held-out entries, which are none of
        # its inputs (the final factors below see them)
        held_pred = objective.held_out_prediction()
        self._fit_blend(
            vals,
            cols,
            n_cols,
            held_pred,
            None if held_out is None else held_out[1:],
        )
        held_pred = held_out = params = None
        # the training state goes before the final encoding (memory peak)
        objective.release()
        objective = None
        trim_heap(n_obs)  # the training's freed pages, before the encodings

        self._encode_observed(rows, cols, vals, shape)
        self._store_levels(levels, quantiser)
        return None

    def _split_entries(self, rows, cols, vals, n_rows, seed):
        """The training entries grouped by row, and the held-out triplets.

        Returns ``(by_row, held_out)``; ``held_out`` is ``(rows, cols,
        values)`` of early stopping's held-out entries, or None.
        """
        device = rows.device
        n_obs = rows.numel()
        train_idx = np.arange(n_obs)
        val_idx = np.empty(0, dtype=np.intp)
        if self.early_stopping and n_obs >= 2:
            train_idx, val_idx = split_indices(n_obs, self.validation_fraction, seed)
        # sorted, the training entries keep the row-major order of the input,
        # and grouping them by row needs no sort (nor copies)
        train_idx = to_tensor(train_idx, device)  # sorted by split_indices
        by_row = _Sparse(rows[train_idx], cols[train_idx], vals[train_idx], n_rows)
        del train_idx
        trim_heap(n_obs)  # the split's and the grouping's temporaries
        held_out = None
        if val_idx.size:
            val_idx = to_tensor(val_idx, device)
            held_out = (rows[val_idx], cols[val_idx], vals[val_idx])
        return by_row, held_out

    def _train(self, objective, params, batch, gen):
        """Adam on mini-batches of the training entries; exports the history."""
        held_out = objective.held_out
        callbacks = []
        if held_out is not None and held_out[0].numel() >= _LR_MIN_HELD_OUT:
            callbacks.append(
                HalveOnPlateau(
                    tol=self.tol,
                    patience=max(1, self.n_iter_no_change // _LR_PATIENCE_DIV),
                    halvings=_LR_HALVINGS,
                )
            )
        quantiser = objective.quantiser
        result = train(
            params,
            objective.loss,
            n_samples=objective.train[0].numel(),
            batch_size=batch,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            generator=gen,
            optimizer="adam",
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            validation_fn=None if held_out is None else objective.validation,
            on_epoch_start=objective.on_epoch_start,
            status_fn=None if quantiser is None else quantiser.status,
            verbose=self.verbose,
            desc="DMFImputer",
            callbacks=callbacks,
        )
        result.export(self)

    def _store_levels(self, levels, quantiser):
        """DMF-D's fitted levels and boundaries (None for DMF)."""
        self.levels_ = levels
        self.boundaries_ = None
        self._scaled_levels = None
        self._scaled_boundaries = None
        if quantiser is not None:
            b = np.sort(to_numpy(quantiser.boundaries.detach()))
            self._scaled_levels = quantiser.levels_np
            self._scaled_boundaries = b
            self.boundaries_ = b * self._scale_factor[0] + self._scale_shift[0]

    @torch.no_grad()
    def _encode_observed(self, rows, cols, vals, shape):
        """``row_factors_`` and ``column_factors_`` from every observed entry.

        From now on every observed entry is an input, as for new data; one
        side at a time, as a CSR product (no copy of the entries' indices).
        """
        n_rows, n_cols = shape
        full = _Sparse(rows, cols, vals, n_rows)
        U = self.row_branch_.forward_csr(_csr(full, n_rows, n_cols))
        full = _by_column(full, n_rows, n_cols)
        V = self.col_branch_.forward_csr(_csr(full, n_cols, n_rows))
        del full
        self.row_factors_ = to_numpy(U).astype(np.float64, copy=False)
        self.column_factors_ = to_numpy(V).astype(np.float64, copy=False)

    def _scaling_statistics(self, values, cols, n_cols):
        """DMF's map of each column onto [-1, 1], the cosine's range.

        The base's hook: it scales the entries by these statistics and
        unscales the completion. The map depends on ``scaling`` and
        ``levels`` (:func:`~sklearn_mc._dmf_scaling.range_scaling`).
        """
        levels = None if self.levels is None else _check_levels(self.levels)
        fitted = range_scaling(values, cols, n_cols, self.scaling, levels)
        self.scaling_ = fitted.kind
        self._default_half = fitted.default_half
        return fitted.shift, fitted.half

    def _fit_blend(self, vals, cols, n_cols, pred, held_out):
        """Per-column weights of the network against the column mean.

        ``vals``/``cols``: every observed entry (scaled), whose column means
        are the means blended toward; ``pred``: the model's predictions at
        the held-out entries ``held_out = (columns, values)`` (None without
        them). In the [-1, 1] scale, the units of the cosine.
        """
        cols_np = to_numpy(cols)
        counts = np.bincount(cols_np, minlength=n_cols)
        sums = np.bincount(cols_np, to_numpy(vals).astype(np.float64), n_cols)
        mean = sums / np.maximum(counts, 1)
        rule = shrinkage_rule(self.mean_shrinkage)
        auto = rule == "auto"
        weights = None
        if auto:
            if pred is not None:
                v_cols = to_numpy(held_out[0])
                truth = to_numpy(held_out[1]).astype(np.float64) - mean[v_cols]
                model = to_numpy(pred).astype(np.float64) - mean[v_cols]
                if self.scaling_ == "global":
                    # one scale, one model of all columns (ratings): a rating
                    # matrix has a few held-out entries per item, too few to
                    # judge an item alone, so one weight for all columns
                    pooled = np.zeros_like(v_cols)
                    weights = np.repeat(blend_weights(model, truth, pooled, 1), n_cols)
                else:
                    weights = blend_weights(model, truth, v_cols, n_cols)
        elif rule is not None:
            weights = np.full(n_cols, rule)
        if weights is not None and np.all(weights == 1.0):
            weights = None
        self._blend = weights
        self._blend_mean = mean
        store_blend_weights(self, weights)
        if auto and weights is not None:
            warn_shrunk_to_mean(
                self,
                weights,
                np.flatnonzero(self._valid_mask),
                "the network's prediction",
                "Set mean_shrinkage=None to keep the network's output.",
            )

    # ------------------------------------------------------------ transform
    def _transform(self, X, mask):
        V = to_tensor(self.column_factors_, self._device)
        return self._output(self._encode(self.row_branch_, X, mask), V)

    def _run_transform(self, X, mask):
        trim_heap(mask.size)  # the fit's freed pages, before the output's
        # X unscaled: scaled and masked chunk by chunk in _encode, the same
        # numbers as the base's (elementwise), without two dense copies of X
        V = to_tensor(self.column_factors_, self._device)
        with torch.no_grad():
            return self._output(self._encode(self.row_branch_, X, mask, True), V)

    def _encode(self, branch, dense, mask=None, scale=False):
        """Latent factors of dense vectors (one per row of ``dense``), chunked.

        With ``mask``, the entries where it is False are inputs of 0 (and with
        ``scale`` the rows are scaled first), chunk by chunk.
        """
        device = next(branch.parameters()).device
        if device != self._device:
            branch.to(self._device)
            device = self._device
        dtype = next(branch.parameters()).dtype

        def chunk(i):
            part = dense[i : i + _CHUNK]
            if mask is not None:
                part = self._scale(part) if scale else part
                part = np.where(mask[i : i + _CHUNK], part, 0.0)
            return to_tensor(part, device, dtype)

        parts = [branch(chunk(i)) for i in range(0, dense.shape[0], _CHUNK)]
        if not parts:
            return torch.empty((0, self.latent_dim), dtype=dtype, device=device)
        return torch.cat(parts)

    def _output(self, U, V, blend=True):
        """Cosine of every row factor with every column factor, quantised.

        ``blend``: the columns are the training ones, blended toward their
        means (``mean_shrinkage``) before the quantisation.
        """
        dtype = compute_dtype(U.device)  # float64 also after a float32 fit
        # a copy of U (never the caller's, e.g. row_factors_), normalised in
        # place as F.normalize divides: one (n_rows, latent_dim) array less
        U, V = U.to(dtype, copy=True), V.to(dtype)
        U = U.div_(U.norm(dim=-1, keepdim=True).clamp_min(1e-12).expand_as(U))
        V = torch.nn.functional.normalize(V, dim=-1, eps=1e-12)
        out = to_numpy(U @ V.T).astype(np.float64, copy=False)
        if blend and self._blend is not None:
            # in place, no temporary of the output's size
            out -= self._blend_mean
            out *= self._blend
            out += self._blend_mean
        if self._scaled_levels is not None:
            out = self._scaled_levels[
                np.searchsorted(self._scaled_boundaries, out, side="right")
            ]
        return out

    def _finish(self, X, mask, completion, keep_valid_only=False):
        out = super()._finish(X, mask, completion, keep_valid_only)
        if self.levels_ is None:
            return out
        # Unscaling is not exact in floating point: snap to the levels.
        if out.shape[1] == mask.shape[1]:
            out[~mask] = self._snap(out[~mask])
        else:
            valid = out[:, self._valid_mask]
            valid[~mask] = self._snap(valid[~mask])
            out[:, self._valid_mask] = valid
        return out

    def _snap(self, values):
        edges = (self.levels_[1:] + self.levels_[:-1]) / 2
        return self.levels_[np.searchsorted(edges, values)]

    @property
    def col_factors_(self):
        """Deprecated alias of ``column_factors_`` (the name before 0.2)."""
        factors = self.column_factors_  # AttributeError before fit, no warning
        warnings.warn(
            "col_factors_ was renamed column_factors_; the old name will be "
            "removed in a later release.",
            FutureWarning,
            stacklevel=2,
        )
        return factors

    def __setstate__(self, state):
        # a model pickled before the rename stores col_factors_
        if "col_factors_" in state:
            state["column_factors_"] = state.pop("col_factors_")
        super().__setstate__(state)

    # ------------------------------------------------------------- complete
    def complete(self, X_new_rows=None, X_new_cols=None, X_new_both=None):
        """Complete new rows, new columns and their crossing without retraining.

        The paper's extension of a trained DMF (its Fig. 2): a new row is
        encoded from its entries over the training columns, a new column from
        its entries over the training rows, and an entry is the cosine of the
        two factors. Entries of new rows on new columns are not inputs (they
        fit neither branch); give them as ``X_new_both`` to have them kept.

        Parameters
        ----------
        X_new_rows : array-like of shape (n_new_rows, n_features_in_) or None
            New rows over the training columns (area II), NaN (or
            ``missing_values``) where unobserved.
        X_new_cols : array-like of shape (n_train_rows, n_new_cols) or None
            New columns over the training rows, in the training row order
            (area III).
        X_new_both : array-like of shape (n_new_rows, n_new_cols) or None
            Observed entries of the new rows on the new columns (area IV);
            needs both other inputs. They are kept, not used as inputs.

        Returns
        -------
        completion : DMFCompletion
            Named tuple ``(new_rows, new_cols, new_both)`` of ndarrays, None
            for the blocks whose inputs were not given: ``new_rows`` equals
            ``transform(X_new_rows)`` (as an ndarray), ``new_cols`` is the
            training rows over the new columns, ``new_both`` the new rows over
            the new columns (needs ``X_new_rows`` and ``X_new_cols``).
            Observed entries are kept; with ``levels`` every other entry is a
            level.
        """
        return complete_blocks(self, X_new_rows, X_new_cols, X_new_both)
