"""Deep linear matrix factorisation with implicit low-rank bias (Arora et al. 2019)."""

from __future__ import annotations

import numpy as np
import torch

from ._base import OPTIMIZER_CONSTRAINT
from ._deep_linear import (
    DeepLinearImputer,
    dense_targets,
    entries,
    masked_error,
    predict_entries_chunked,
    train_dtype,
)
from ._gradient import (
    BATCH_SIZE_CONSTRAINT,
    fill_parameter_docs,
)
from ._optim import train
from ._registry import _iters
from ._torch import draw_seed, make_generator
from .model_selection import split_indices

# Held-out loss is checked at most this often (iterations) during early stopping;
# a check costs about one forward pass.
_MAX_VALIDATION_INTERVAL = 10


@fill_parameter_docs
class DeepMFImputer(DeepLinearImputer):
    """Complete a matrix with a deep linear factorisation and no regulariser.

    The completion is the product ``X = W[L-1] ... W[1] W[0]`` of ``depth``
    factors with a large inner ``width`` (by default ``min(n_samples,
    n_features, 256)``, so there is no rank to choose). The factors start small and
    balanced and are trained by gradient descent (Adam by default) on the
    squared error of the observed entries only. Gradient descent on such a
    product is biased toward low rank, the more so the deeper the product
    (Arora, Cohen, Hu & Luo, *Implicit regularization in deep matrix
    factorization*, NeurIPS 2019): with few observations depth 3 recovers a
    low-rank matrix where depth 2 and nuclear-norm minimisation fail.

    Unregularised, the product eventually fits the observed entries exactly
    and overfits, so by default a share of the observed entries is held out
    and training stops when their error stops improving (the best iterate is
    kept).

    Parameters
    ----------
    depth : int, default=3
        Number of factors ``L``; 1 is a plain dense fit, 2 is ``U Vᵀ``.
    width : int or None, default=None
        Inner dimension of the factors; None means ``min(n_samples,
        n_features, 256)`` (the full width, so the product can take any
        rank, up to 256: the papers' matrices, up to 240 x 240, keep their
        full width; larger tables are not made to pay ``O(min(m, n))`` per
        entry for ranks no full-batch fit could use).
    init_scale : float, default=1e-3
        Standard deviation of the entries of the initial product (in
        standardised units). Smaller means a stronger low-rank bias and a
        longer start-up phase.
    {learning_rate}
    optimizer : {"adam", "sgd", "rmsprop", "grouprmsprop"}, default="adam"
        Update rule. ``"grouprmsprop"`` is Arora et al.'s: the plain gradient
        direction with one adaptive step size, which keeps gradient descent's
        implicit bias (use it with a larger ``learning_rate``, e.g. 1e-2);
        Adam converges faster but rescales coordinates, which weakens the
        low-rank bias somewhat. ``"sgd"`` has momentum 0.9.
    {batch_size}
        The items are the observed entries.
    {max_iter}
    {tol}
    {early_stopping}
    {validation_fraction}
    {n_iter_no_change}
        Here counted in iterations: the held-out error is checked every
        ``min(10, n_iter_no_change // 10)`` iterations, and training stops
        after ``n_iter_no_change`` iterations' worth of checks without
        progress (see :ref:`deep_mf` for how the default was chosen).
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
    factors_ : list of ndarray
        ``[W[0], ..., W[L-1]]`` in standardised units (columns centred and
        scaled to unit variance on their observed entries).
    components_ : ndarray of shape (n_components, n_valid_features)
        Fold-in basis ``B`` derived from the right product (see Notes).
    noise_variance_ : float
        Noise variance of the fold-in (training residual, floored).
    n_iter_ : int
        Iterations run.
    best_iter_ : int
        Iteration whose parameters were kept.
    loss_curve_ : list of float
        Training loss per iteration.
    validation_loss_curve_ : list of float
        Held-out loss at each check (empty without early stopping).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X is a DataFrame.

    See Also
    --------
    AIRNetImputer : the same product with adaptive Laplacian regularisers.
    SVDImputer : low rank by truncation or nuclear-norm shrinkage.

    Notes
    -----
    **Memory and time.** Full batch (the default), with ``m`` rows, ``n``
    columns and ``w = width``: training keeps three ``m x n`` arrays, the
    training mask (bool), the targets and one buffer holding the product and
    then its residual and gradient (the loss and its backward pass are
    fused): 9 bytes per entry in float32, beside the float64 input copies of
    the common pipeline (16 bytes per entry). The factors
    (``(m + n)·w + (depth − 2)·w²`` numbers) are kept with their gradients,
    Adam's two moments and the training loop's snapshots (about nine
    copies). Memory therefore grows linearly in the rows and in the columns,
    as ``O(m·n + (m + n)·w + depth·w²)``; freed heap pages are handed back
    to the system every step on large matrices. A step costs three
    ``m x w x n`` products (the forward one and two gradients) plus
    ``O(depth·n·w²)``: ``O(m·n·w)``, linear in the rows and in the columns,
    with ``w ≤ 256`` by default. Mini-batches (``batch_size``) touch only
    the batch's entries but form the inner product once per batch. Measured
    memory and times are on the method page (:ref:`deep_mf`). For much
    larger tables set ``width`` (a generous bound on the rank, e.g. 64) or
    use ``SGDMFImputer``. Sparse input is not accepted (the loss is computed on
    the dense product). Above 250,000 entries the factors are trained in
    float32 (float64 below, where the cost is small and the exact
    recoveries of Arora et al.'s experiment reach errors of ~3e-3); the
    fitted attributes and the output are float64.

    **Inductive rule.** :meth:`transform` folds each row in against the
    learned right product ``R = W[L-2] ... W[0]``: with ``W[L-1] = Q T``
    (QR), ``B = T R / sqrt(n_samples)`` spans the learned row space and
    reproduces the training rows' second moments; a row ``x`` with observed
    entries ``O`` is completed as ``z B`` with ``z`` the ridge solution of
    ``min ‖x_O − (z B)_O‖² + σ²‖z‖²`` (``σ²`` the training residual). This
    is the posterior mean under ``x = z B + noise``, ``z ~ N(0, I)``; a row
    with no observations gets the column means.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mc import DeepMFImputer
    >>> from sklearn_mc.datasets import make_low_rank
    >>> X = make_low_rank(30, 20, 2, random_state=0)
    >>> X_missing = X.copy()
    >>> X_missing[np.random.RandomState(0).rand(*X.shape) < 0.3] = np.nan
    >>> imp = DeepMFImputer(learning_rate=1e-2, max_iter=2000, random_state=0)
    >>> X_filled = imp.fit_transform(X_missing)
    >>> hidden = np.isnan(X_missing)
    >>> bool(np.abs(X_filled - X)[hidden].mean() < 0.1 * np.abs(X).mean())
    True
    """

    _cli_name = "deep-mf"
    _summary = "deep linear factorisation, implicit low-rank bias (images)"
    # Listing order, --fast settings and fit-time model: see sklearn_mc._registry.
    _cli_order = 40
    _fast_params: dict = {"learning_rate": 1e-2, "max_iter": 500}
    _iterative = True

    @staticmethod
    def _fit_cost(params: dict, n_rows: int, n_cols: int, n_observed: int) -> float:
        return _iters(params, 10000) * (5e-3 + 4e-7 * n_rows * n_cols)

    _parameter_constraints: dict = {
        **DeepLinearImputer._parameter_constraints,
        "optimizer": OPTIMIZER_CONSTRAINT,
        "batch_size": BATCH_SIZE_CONSTRAINT,
    }

    def __init__(
        self,
        *,
        depth=3,
        width=None,
        init_scale=1e-3,
        learning_rate=1e-3,
        optimizer="adam",
        batch_size=None,
        max_iter=10000,
        tol=1e-4,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=100,
        missing_values=np.nan,
        keep_empty_features=False,
        add_indicator=False,
        min_value=-np.inf,
        max_value=np.inf,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.depth = depth
        self.width = width
        self.init_scale = init_scale
        self.optimizer = optimizer
        self.batch_size = batch_size
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

    def _fit(self, X: np.ndarray, mask: np.ndarray) -> np.ndarray:
        device = self._device
        dtype = train_dtype(X.shape, device)
        # From the generator the base class opened for this fit.
        seed = draw_seed()
        generator = make_generator(seed)
        flat = np.flatnonzero(mask)
        fraction = self.validation_fraction if self.early_stopping else 0.0
        train_idx, val_idx = split_indices(flat.size, fraction, random_state=seed)
        n_train = train_idx.size
        factors = self._make_factors(X.shape, generator)
        full_batch = self.batch_size is None or self.batch_size >= n_train
        loss_fn, data = _training_loss(
            factors, X, mask, flat[train_idx], flat[val_idx], full_batch, dtype
        )
        del train_idx
        validation_fn, interval, patience = None, 1, self.n_iter_no_change
        if val_idx.size:
            validation_fn = _held_out_loss(factors, X, flat[val_idx], dtype)
            # Patience in iterations, checked every `interval` of them.
            interval = max(
                1, min(_MAX_VALIDATION_INTERVAL, self.n_iter_no_change // 10)
            )
            patience = max(1, self.n_iter_no_change // interval)
        del flat, val_idx
        result = train(
            factors,
            loss_fn,
            n_samples=n_train,
            batch_size=self.batch_size,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            generator=generator,
            optimizer=self.optimizer,
            tol=self.tol,
            n_iter_no_change=patience,
            validation_fn=validation_fn,
            validation_interval=interval,
            on_epoch_start=self._monitor_hook(factors, X.shape),
            verbose=self.verbose,
            desc=type(self).__name__,
        )
        result.export(self)
        data.clear()
        return self._store_factors(factors, X, mask)


def _triplets(X, flat_idx, device, dtype):
    """``(rows, cols, values)`` tensors of the entries at flat indices of ``X``."""
    rows, cols = np.divmod(flat_idx, X.shape[1])
    return (
        torch.as_tensor(rows, device=device),
        torch.as_tensor(cols, device=device),
        torch.as_tensor(X[rows, cols], device=device, dtype=dtype),
    )


def _training_loss(factors, X, mask, train, held, full_batch, dtype):
    """The loss on the training entries (flat indices ``train``) and the data.

    Full batch uses a dense masked residual (the product is formed anyway, and
    a dense mask avoids scattering the gradient through an index); mini-batches
    gather the batch's entries. The data are in a dict so that the caller can
    release them before the completion is formed (the loss holds the dict).
    """
    device = factors[0].device
    n_train = train.size
    data: dict = {}
    if full_batch:
        keep = mask.copy()
        keep.flat[held] = False
        data["unused"], data["target"] = dense_targets(X, keep, device, dtype)
        del keep
    else:
        data["rows"], data["cols"], data["vals"] = _triplets(X, train, device, dtype)

    def loss_fn(idx):
        if idx is None:
            return masked_error(factors, data["target"], data["unused"], 1.0 / n_train)
        pred = entries(factors, data["rows"][idx], data["cols"][idx])
        return ((pred - data["vals"][idx]) ** 2).mean()

    return loss_fn, data


def _held_out_loss(factors, X, held, dtype):
    """Mean squared error on the held-out entries (flat indices ``held``)."""
    rows, cols, vals = _triplets(X, held, factors[0].device, dtype)

    def validation_fn():
        pred = predict_entries_chunked(factors, rows, cols)
        return float(((pred - vals) ** 2).mean())

    return validation_fn
