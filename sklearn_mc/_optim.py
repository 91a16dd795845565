"""The one training loop of every gradient-trained imputer.

A method supplies its parameters and a loss on a batch of indices (into
whatever it trains on: observed entries, rows, ...); :func:`train` does the
rest: shuffled mini-batches or full batch, Adam / SGD / RMSprop, early stopping
on a validation callable (held-out observed entries), convergence on the
training loss, a divergence guard and a tqdm progress bar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

#: how many times a diverging fit (non-finite loss) is rewound and retried
#: with half the learning rate before it gives up with an error.
MAX_DIVERGENCE_RETRIES = 6
#: a finite epoch loss this many times above the first epoch's also counts as
#: divergence (not the lowest's: near an exact fit, harmless noise on a loss of
#: 1e-12 would look like an explosion): steps so large that the loss
#: explodes without overflowing (Adam with a huge learning rate).
DIVERGENCE_FACTOR = 1e4


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite and halving the step size did not help."""


@dataclass
class TrainResult:
    """What :func:`train` reports back to the estimator."""

    n_iter: int
    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    best_iter: int = 0
    learning_rate: float = 0.0
    stop_reason: str = "max_iter"


class GroupRMSprop(torch.optim.Optimizer):
    """Gradient descent with one adaptive step size for all parameters.

    The step is ``lr / (sqrt(v) + eps)`` times the gradient, with ``v`` a
    bias-corrected running average of the squared norm of the whole gradient
    (all parameters together). Unlike Adam or RMSprop, the update keeps the
    direction of the plain gradient, and so its implicit bias; only its
    length adapts. This is the optimiser of Arora et al. (2019)'s deep
    matrix factorisation experiments.
    """

    def __init__(self, params, lr=1e-3, alpha=0.99, eps=1e-4, weight_decay=0.0):
        super().__init__(
            params, {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay}
        )

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [
                p.grad + group["weight_decay"] * p if group["weight_decay"] else p.grad
                for p in params
            ]
            state = self.state[params[0]]
            state["step"] = state.get("step", 0) + 1
            sq = sum((g * g).sum() for g in grads)
            alpha = group["alpha"]
            state["square_avg"] = (
                alpha * state.get("square_avg", 0.0) + (1 - alpha) * sq
            )
            avg = (state["square_avg"] / (1 - alpha ** state["step"])).sqrt()
            scale = group["lr"] / (avg + group["eps"])
            for p, g in zip(params, grads, strict=True):
                p.sub_(scale * g)
        return loss


def make_optimizer(
    name: str, params: list[torch.Tensor], learning_rate: float, weight_decay=0.0
) -> torch.optim.Optimizer:
    """Build the optimiser called ``name``.

    One of "adam", "sgd" (momentum 0.9), "rmsprop" or "grouprmsprop"
    (:class:`GroupRMSprop`: plain gradient direction, one adaptive step).
    """
    if name == "adam":
        return torch.optim.Adam(params, lr=learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=learning_rate, momentum=0.9, weight_decay=weight_decay
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=learning_rate, weight_decay=weight_decay)
    if name == "grouprmsprop":
        return GroupRMSprop(params, lr=learning_rate, weight_decay=weight_decay)
    raise ValueError(
        f"unknown optimizer {name!r}; use 'adam', 'sgd', 'rmsprop' or 'grouprmsprop'."
    )


def progress(total: int, verbose: int, desc: str) -> tqdm:
    """A tqdm bar on stderr, shown only when ``verbose`` is truthy."""
    return tqdm(total=total, desc=desc, disable=not verbose, leave=verbose > 1)


def train(
    params: Iterable[torch.Tensor],
    loss_fn: Callable[[torch.Tensor | None], torch.Tensor],
    *,
    n_samples: int,
    batch_size: int | None,
    max_iter: int,
    learning_rate: float,
    generator: torch.Generator,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    tol: float = 1e-4,
    n_iter_no_change: int = 10,
    validation_fn: Callable[[], float] | None = None,
    validation_interval: int = 1,
    on_epoch_start: Callable[[int], None] | None = None,
    status_fn: Callable[[], dict] | None = None,
    stop_fn: Callable[[int], bool] | None = None,
    verbose: int = 0,
    desc: str = "fit",
) -> TrainResult:
    """Minimise ``loss_fn`` over ``params``.

    Parameters
    ----------
    params : iterable of torch.Tensor
        Leaf tensors with ``requires_grad=True``; updated in place.
    loss_fn : callable
        ``loss_fn(idx)`` returns the scalar mean loss on the items ``idx`` (a
        LongTensor on the parameters' device), or on all items when ``idx`` is
        None (full batch).
    n_samples : int
        Number of items the mini-batches are drawn from.
    batch_size : int or None
        Items per step; None or ``>= n_samples`` means full batch.
    max_iter : int
        Maximum number of epochs (passes over the items).
    learning_rate : float
        Initial step size; halved each time the loss diverges.
    generator : torch.Generator
        CPU generator for the shuffles (reproducibility).
    optimizer : {"adam", "sgd", "rmsprop", "grouprmsprop"}, default="adam"
        The update rule.
    weight_decay : float, default=0.0
        Decoupled L2 penalty passed to the optimiser.
    tol : float, default=1e-4
        Relative improvement of the monitored loss that counts as progress.
    n_iter_no_change : int, default=10
        Stop after this many checks without progress.
    validation_fn : callable or None, default=None
        Returns the held-out loss; when given it is monitored (early stopping)
        and the parameters of its best check are restored at the end.
        Otherwise the epoch's training loss is monitored.
    validation_interval : int, default=1
        Epochs between two calls of ``validation_fn``.
    on_epoch_start : callable or None, default=None
        Called with the epoch number before each epoch (annealing, new masks).
    status_fn : callable or None, default=None
        Extra values (a dict) for the progress bar.
    stop_fn : callable or None, default=None
        Called with the epoch count after each finished epoch; returning True
        ends training as converged (a method's own stopping rule).
    verbose : int, default=0
        Show a progress bar when truthy.
    desc : str, default="fit"
        Label of the progress bar.

    Returns
    -------
    TrainResult
    """
    params = [p for p in params if p.requires_grad]
    device = params[0].device
    full_batch = batch_size is None or batch_size >= n_samples
    lr = learning_rate
    opt = make_optimizer(optimizer, params, lr, weight_decay)
    result = TrainResult(n_iter=0, learning_rate=lr)
    epoch_start = _snapshot(params)
    best_state = epoch_start
    best_value = float("inf")
    # Start of the epoch with the lowest training loss: where a diverging run
    # is rewound to (the last epoch's start may already be on the way out).
    safe_state = epoch_start
    lowest = first = None
    no_change = 0
    retries = 0
    epoch = 0
    bar = progress(max_iter, verbose, desc)
    try:
        while epoch < max_iter:
            if on_epoch_start is not None:
                on_epoch_start(epoch)
            total = _run_epoch(
                params,
                opt,
                loss_fn,
                n_samples,
                batch_size,
                full_batch,
                generator,
                device,
            )
            exploded = bool(first) and total > DIVERGENCE_FACTOR * first
            if (
                exploded
                or not _is_finite(total)
                or not all(bool(torch.isfinite(p).all()) for p in params)
            ):
                retries += 1
                _restore(params, epoch_start)
                if retries > MAX_DIVERGENCE_RETRIES:
                    raise DivergenceError(
                        "training diverged (non-finite or exploding loss) "
                        f"{retries} times even after lowering the learning rate "
                        f"to {lr:.3g}; use a "
                        "smaller learning_rate or stronger regularisation."
                    )
                _restore(params, safe_state)
                epoch_start = safe_state
                lr /= 2
                opt = make_optimizer(optimizer, params, lr, weight_decay)
                continue
            if lowest is None or total < lowest:
                lowest, safe_state = total, epoch_start
                first = total if first is None else first
            epoch += 1
            result.n_iter = epoch
            result.train_loss.append(total)
            monitored = total
            checked = validation_fn is None or epoch % validation_interval == 0
            if validation_fn is not None and checked:
                monitored = float(validation_fn())
                result.validation_loss.append(monitored)
            if checked:
                if monitored < best_value - tol * abs(best_value):
                    no_change = 0
                else:
                    no_change += 1
                if monitored < best_value:
                    best_value = monitored
                    result.best_iter = epoch
                    if validation_fn is not None:
                        best_state = _snapshot(params)
            epoch_start = _snapshot(params)
            if verbose:
                postfix = {"loss": f"{total:.4g}"}
                if validation_fn is not None and result.validation_loss:
                    postfix["val"] = f"{result.validation_loss[-1]:.4g}"
                if status_fn is not None:
                    postfix.update(status_fn())
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
            if no_change >= n_iter_no_change:
                result.stop_reason = (
                    "early_stopping" if validation_fn is not None else "converged"
                )
                break
            if stop_fn is not None and stop_fn(epoch):
                result.stop_reason = "converged"
                break
    finally:
        bar.close()
    if validation_fn is not None and result.validation_loss:
        _restore(params, best_state)
    result.learning_rate = lr
    return result


def _run_epoch(params, opt, loss_fn, n_samples, batch_size, full_batch, gen, device):
    if full_batch:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(None)
        loss.backward()
        opt.step()
        return float(loss.detach())
    order = torch.randperm(n_samples, generator=gen).to(device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    for idx in torch.split(order, batch_size):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(idx)
        loss.backward()
        opt.step()
        total += loss.detach().to(torch.float64) * idx.numel()
    return float(total) / n_samples


def _snapshot(params):
    return [p.detach().clone() for p in params]


def _restore(params, state):
    with torch.no_grad():
        for p, s in zip(params, state, strict=True):
            p.copy_(s)


def _is_finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")
