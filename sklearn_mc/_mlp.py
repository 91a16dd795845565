"""MLPImputer: a feed-forward network trained to predict entries it cannot see.

Alkady ( "Low-rank matrix completion via deep neural networks")
trains a two-hidden-layer ReLU network on flattened low-rank matrices with a
few entries masked; its "going forward" list asks for general shapes and for
masks that vary between iterations. Here every row of ``X`` is one sample:
the network reads the row (standardised per column, unseen entries set to 0,
the column mean) next to its visibility indicator and outputs the whole row.
At every mini-batch a fresh random share of the *observed* entries is hidden
from the input and the loss is the squared error on exactly those entries,
so the network is trained to predict what it cannot see from what it can,
using nothing but the observed data (a masked / denoising autoencoder).
"""

from __future__ import annotations

import copy
from numbers import Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._gradient import (
    BATCH_SIZE_CONSTRAINT,
    GradientTrainedImputer,
    fill_parameter_docs,
)
from ._optim import train
from ._registry import _iters
from ._torch import compute_dtype, fit_generator, linear, make_generator
from .model_selection import split_indices

#: rows per forward pass outside training (validation, transform); bounds the
#: activation memory independently of the number of rows.
CHUNK_ROWS = 4096
#: dtype of training: float32 halves the device copy of X and runs the
#: mini-batch steps about twice as fast as float64 on a CPU.
TRAIN_DTYPE = torch.float32


@fill_parameter_docs
class MLPImputer(GradientTrainedImputer):
    """Impute with a neural network trained on randomly re-hidden entries.

    Each row is one sample. The network's input is the row after per-column
    standardisation with every unseen entry set to 0 (the column mean),
    concatenated with the row's 0/1 visibility indicator; its output is the
    whole row. During training a fresh random subset of the observed entries
    (each with probability ``mask_fraction``) is hidden at every mini-batch,
    and the loss is the mean squared error on those hidden entries. Because
    the masks are redrawn, the network learns to complete a row from any
    subset of its entries, which is what :meth:`transform` then asks of it:
    it completes new rows with one forward pass (inductive).

    Read more in the :ref:`User Guide <mlp>`.

    Parameters
    ----------
    hidden_layer_sizes : "auto" or tuple of int, default="auto"
        Widths of the hidden ReLU layers, as in scikit-learn's
        ``MLPRegressor``. ``"auto"`` gives two layers of
        ``clip(4 * n_features, 64, 1024)`` units (Alkady's width grows with
        the input size; two layers were the paper's finding). An empty tuple
        gives a linear model.
    mask_fraction : float in (0, 1), default=0.2
        Probability with which each observed entry is hidden from the input
        (and becomes a training target) in a mini-batch.
    {batch_size}
        The items are the rows.
    {learning_rate}
        The update rule is Adam.
    {max_iter}
    {tol}
    {early_stopping}
        The held-out entries are whole entries, not rows, never shown during
        training, and inputs again afterwards: ``fit_transform`` and
        ``transform`` see every observed entry.
    {validation_fraction}
    {n_iter_no_change}
        Counted in epochs. The redrawn masks make training noisy and the
        held-out error often stalls for 10-20 epochs before improving again,
        hence more patience than ``MLPRegressor``.
    {missing_values}
    {keep_empty_features}
    {add_indicator}
    {min_value}
    {max_value}
    {device}
    {random_state}
        The masks are drawn from it too.
    {verbose}

    Attributes
    ----------
    network_ : torch.nn.Sequential
        The trained network (input ``2 * n_features_out``, output
        ``n_features_out``).
    hidden_layer_sizes_ : tuple of int
        The hidden widths actually used.
    n_iter_ : int
        Epochs run.
    best_iter_ : int
        Epoch whose network was kept (the best validation loss), or the epoch
        with the lowest training loss without early stopping.
    loss_curve_ : list of float
        Training loss (MSE on the hidden entries, standardised units) per
        epoch.
    validation_loss_curve_ : list of float
        MSE on the held-out entries per epoch (empty without early stopping).
    stop_reason_ : str
        ``"early_stopping"``, ``"converged"`` or ``"max_iter"``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during ``fit`` (DataFrame input only).

    See Also
    --------
    sklearn.impute.IterativeImputer : regresses each column on the others.
    sklearn.neural_network.MLPRegressor : the network family used here.

    Notes
    -----
    Memory is the data (one copy of ``X`` and its mask on the device) plus
    the network and one mini-batch of activations; validation and
    ``transform`` run in chunks of 4096 rows. Bound: the base class's scaled
    copy of ``X`` (8 bytes per entry), its float32 copy on the device (4),
    the masks (a few bytes) and the completion (8, twice at the end), about
    4 × X in all plus the network (measured figures on the method page,
    :ref:`mlp`). Time per epoch is
    ``O(n_samples * n_features * width + n_samples * width**2)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mc import MLPImputer
    >>> from sklearn_mc.datasets import make_low_rank
    >>> X = make_low_rank(200, 8, 2, random_state=0)
    >>> X_missing = X.copy()
    >>> X_missing[::3, 0] = np.nan
    >>> imputer = MLPImputer(max_iter=20, random_state=0)
    >>> X_filled = imputer.fit_transform(X_missing)
    >>> X_filled.shape, bool(np.isnan(X_filled).any())
    ((200, 8), False)
    >>> imputer.transform(X_missing[:2]).shape  # unseen rows work the same way
    (2, 8)
    """

    _cli_name = "mlp"
    _summary = "autoencoder-style MLP, inductive (tables, new rows)"
    # Listing order, --fast settings and fit-time model: see sklearn_mc._registry.
    _cli_order = 60
    _fast_params: dict = {"max_iter": 50}
    _iterative = True

    @staticmethod
    def _fit_cost(params: dict, n_rows: int, n_cols: int, n_observed: int) -> float:
        return _iters(params, 500) * (1e-2 + 2e-4 * n_rows * (1 + n_cols / 100))

    _parameter_constraints: dict = {
        **GradientTrainedImputer._parameter_constraints,
        "hidden_layer_sizes": [StrOptions({"auto"}), "array-like"],
        "mask_fraction": [Interval(Real, 0, 1, closed="neither")],
        "batch_size": BATCH_SIZE_CONSTRAINT,
    }

    _scaling = "standard"

    def __init__(
        self,
        *,
        hidden_layer_sizes="auto",
        mask_fraction=0.2,
        batch_size=64,
        learning_rate=1e-3,
        max_iter=500,
        tol=1e-4,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=30,
        missing_values=np.nan,
        keep_empty_features=False,
        add_indicator=False,
        min_value=-np.inf,
        max_value=np.inf,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.mask_fraction = mask_fraction
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

    # ----------------------------------------------------------------- fit
    def _fit(self, X: np.ndarray, mask: np.ndarray) -> None:
        n_samples, n_features = X.shape
        device = self._device
        dtype = TRAIN_DTYPE
        self.hidden_layer_sizes_ = _resolve_widths(self.hidden_layer_sizes, n_features)
        # Every random draw comes from the generator the base opened for this fit.
        gen = fit_generator()
        self.network_ = _build_network(n_features, self.hidden_layer_sizes_, gen).to(
            device=device, dtype=dtype
        )
        split_seed, shuffle_seed, mask_seed = (
            int(s) for s in torch.randint(2**31 - 1, (3,), generator=gen)
        )

        values = torch.as_tensor(X, dtype=dtype, device=device).nan_to_num_(0.0)
        train_mask, held_out = self._split_observed(mask, split_seed, device)
        net = self.network_
        loss_fn = _hidden_entries_loss(
            net, values, train_mask, self.mask_fraction, make_generator(mask_seed)
        )
        validation_fn = None
        if held_out is not None:
            validation_fn = _held_out_loss(net, values, train_mask, held_out)

        result = train(
            net.parameters(),
            loss_fn,
            n_samples=n_samples,
            batch_size=self.batch_size,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            generator=make_generator(shuffle_seed),
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            validation_fn=validation_fn,
            verbose=self.verbose,
            desc=type(self).__name__,
        )
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        result.export(self)
        return None

    def _split_observed(self, mask, seed, device):
        """Training mask and the held-out entries (None without early stopping)."""
        if not self.early_stopping:
            return torch.as_tensor(mask, device=device), None
        # A Bernoulli draw per entry needs one float32 array, where an exact
        # split would need several int64 arrays the size of the observed set.
        draw = torch.rand(mask.shape, generator=make_generator(seed))
        held_out = mask & (draw < self.validation_fraction).numpy()
        del draw
        n_held, n_observed = int(held_out.sum()), int(mask.sum())
        if n_held == 0 or n_held == n_observed:
            # Tiny data: an exact split keeps an entry on each side if it can.
            observed = np.flatnonzero(mask)
            _, out = split_indices(n_observed, self.validation_fraction, seed)
            if out.size == 0:  # a single observed entry: nothing to hold out
                return torch.as_tensor(mask, device=device), None
            held_out = np.zeros(mask.shape, dtype=bool)
            held_out.flat[observed[out]] = True
        return torch.as_tensor(mask & ~held_out, device=device), held_out

    # ----------------------------------------------------------- transform
    def _transform(self, X: np.ndarray, mask: np.ndarray) -> np.ndarray:
        device = self._device
        # Inference in float64 (where the device has it): how rows are batched
        # then moves a row's output by rounding only (a few ulps, see
        # docs/contract.rst), not by float32 error.
        dtype = compute_dtype(device)
        net = copy.deepcopy(self.network_).to(device=device, dtype=dtype)
        out = np.empty(X.shape, dtype=np.float64)
        for start in range(0, X.shape[0], CHUNK_ROWS):
            stop = start + CHUNK_ROWS
            rows = torch.as_tensor(X[start:stop], dtype=dtype, device=device)
            seen = torch.as_tensor(mask[start:stop], device=device)
            pred = net(_network_input(rows.nan_to_num(0.0), seen))
            out[start:stop] = pred.detach().cpu().to(torch.float64).numpy()
        return out


def _hidden_entries_loss(net, values, train_mask, fraction, mask_gen):
    """The training loss: squared error on a fresh random share of the
    observed entries of the batch's rows, hidden from the input."""
    device, dtype = values.device, values.dtype

    def loss_fn(idx):
        rows = values if idx is None else values[idx]
        seen = train_mask if idx is None else train_mask[idx]
        # Drawn on the CPU generator so that a fit is reproducible
        # whatever the device.
        draw = torch.rand(seen.shape, generator=mask_gen, dtype=dtype)
        hide = seen & (draw < fraction).to(device)
        out = net(_network_input(rows, seen & ~hide))
        err = torch.where(hide, out - rows, 0.0)
        return (err * err).sum() / hide.sum().clamp(min=1)

    return loss_fn


def _held_out_loss(net, values, train_mask, held_out):
    """Mean squared error on the held-out entries, rows in chunks."""
    device = values.device
    held_rows = torch.as_tensor(np.flatnonzero(held_out.any(axis=1)), device=device)
    held = torch.as_tensor(held_out, device=device)
    n_held = int(held_out.sum())

    def validation_fn():
        total = torch.zeros((), dtype=torch.float64, device=device)
        with torch.no_grad():
            for idx in torch.split(held_rows, CHUNK_ROWS):
                rows = values[idx]
                out = net(_network_input(rows, train_mask[idx]))
                err = torch.where(held[idx], out - rows, 0.0)
                total += (err * err).sum().to(torch.float64)
        return float(total) / n_held

    return validation_fn


def _network_input(values: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """The row with unseen entries at 0 (the column mean) and its indicator."""
    vis = visible.to(values.dtype)
    return torch.cat([values * vis, vis], dim=1)


def _resolve_widths(hidden_layer_sizes, n_features: int) -> tuple[int, ...]:
    if isinstance(hidden_layer_sizes, str):
        width = int(np.clip(4 * n_features, 64, 1024))
        return (width, width)
    try:
        widths = tuple(int(s) for s in np.ravel(hidden_layer_sizes))
        valid = all(w >= 1 for w in widths) and np.array_equal(
            widths, np.ravel(hidden_layer_sizes).astype(float)
        )
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            "hidden_layer_sizes must be 'auto' or a sequence of positive "
            f"integers, got {hidden_layer_sizes!r}."
        )
    return widths


def _build_network(
    n_features: int, widths: tuple[int, ...], generator: torch.Generator
) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    width_in = 2 * n_features
    for width in widths:
        layers += [linear(width_in, width, generator), torch.nn.ReLU()]
        width_in = width
    layers.append(linear(width_in, n_features, generator))
    return torch.nn.Sequential(*layers)
