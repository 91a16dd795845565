import os
import sys
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from sklearn_mc import _optim
from sklearn_mc._optim import DivergenceError, train
from sklearn_mc._torch import make_generator

sys.path.insert(0, os.path.dirname(__file__))
from conftest import make_fast  # noqa: E402


def _regression(n=200, seed=0):
    gen = make_generator(seed)
    A = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    w_true = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    return A, A @ w_true, w_true


def _loss(A, y, w):
    def loss_fn(idx):
        rows = slice(None) if idx is None else idx
        return ((A[rows] @ w - y[rows]) ** 2).mean()

    return loss_fn


@pytest.mark.parametrize("batch_size", [None, 64])
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_train_fits_least_squares(batch_size, optimizer):
    A, y, w_true = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    result = train(
        [w],
        _loss(A, y, w),
        n_samples=len(y),
        batch_size=batch_size,
        max_iter=200,
        learning_rate=0.05,
        optimizer=optimizer,
        generator=make_generator(0),
        tol=0,
        n_iter_no_change=1000,
    )
    assert result.n_iter == 200
    assert torch.allclose(w.detach(), w_true, atol=1e-2)


def test_early_stopping_restores_best_validation_state():
    A, y, _ = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    history = []

    def validation():
        # A held-out loss that is best after epoch 6 and worse afterwards (the
        # first call is the starting state's).
        value = abs(len(history) - 6) + 1.0
        history.append(w.detach().clone())
        return value

    result = train(
        [w],
        _loss(A, y, w),
        n_samples=len(y),
        batch_size=None,
        max_iter=100,
        learning_rate=0.01,
        generator=make_generator(0),
        validation_fn=validation,
        n_iter_no_change=3,
    )
    assert result.stop_reason == "early_stopping"
    assert result.best_iter == 6
    assert result.n_iter == 9
    assert result.validation_iter == list(range(1, 10))
    assert torch.equal(w.detach(), history[6])


def test_divergence_is_recovered_by_halving_the_step():
    A, y, w_true = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    result = train(
        [w],
        _loss(A, y, w),
        n_samples=len(y),
        batch_size=None,
        max_iter=300,
        learning_rate=50.0,
        optimizer="sgd",
        generator=make_generator(0),
        tol=0,
        n_iter_no_change=1000,
    )
    assert result.learning_rate < 50.0
    assert torch.isfinite(w).all()


def test_hopeless_divergence_raises():
    w = torch.ones(2, dtype=torch.float64, requires_grad=True)

    def loss_fn(idx):
        return (w * float("nan")).sum()

    with pytest.raises(DivergenceError, match="diverged"):
        train(
            [w],
            loss_fn,
            n_samples=1,
            batch_size=None,
            max_iter=10,
            learning_rate=1.0,
            generator=make_generator(0),
        )
    assert torch.isfinite(w).all()


# ----------------------------------------------------------- divergence (D3)
def _explosive(lr, max_iter, **kwargs):
    """Plain SGD on least squares with a step far beyond 2 / curvature."""
    A, y, _ = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    result = train(
        [w],
        _loss(A, y, w),
        n_samples=len(y),
        batch_size=None,
        max_iter=max_iter,
        learning_rate=lr,
        optimizer="sgd",
        generator=make_generator(0),
        tol=0,
        n_iter_no_change=1000,
        **kwargs,
    )
    return w, result


@pytest.mark.parametrize("max_iter", [1, 2, 5])
def test_the_last_step_is_checked_for_divergence(max_iter):
    # One step at lr 1e6 explodes; before, the state after the last step was
    # never evaluated, so max_iter=1 returned it.
    with pytest.raises(DivergenceError, match="diverged"):
        _explosive(1e6, max_iter)


@pytest.mark.parametrize("max_iter", [1, 2, 5])
def test_a_final_state_worse_than_the_start_is_rewound(max_iter):
    # lr 4 is about 4x too large: rewinds halve it until the fit improves.
    w, result = _explosive(4.0, max_iter)
    assert result.n_rewinds > 0
    assert result.learning_rate < 4.0
    assert result.n_iter == max_iter == len(result.train_loss)
    assert result.final_loss <= _optim.FINAL_FACTOR * result.train_loss[0]
    assert torch.isfinite(w).all()


def test_a_non_finite_held_out_loss_rewinds():
    A, y, _ = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    calls = []

    def validation():
        calls.append(1)
        return float("nan") if len(calls) == 3 else 1.0 / len(calls)

    result = train(
        [w],
        _loss(A, y, w),
        n_samples=len(y),
        batch_size=None,
        max_iter=4,
        learning_rate=0.01,
        generator=make_generator(0),
        validation_fn=validation,
    )
    assert result.n_rewinds == 1
    assert result.n_iter == 4
    assert all(v == v for v in result.validation_loss)


def test_early_stopping_keeps_the_start_when_no_check_beats_it():
    A, y, _ = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    calls = []

    def validation():  # the start is best on the held-out entries
        calls.append(1)
        return float(len(calls))

    result = train(
        [w],
        _loss(A, y, w),
        n_samples=len(y),
        batch_size=None,
        max_iter=50,
        learning_rate=0.01,
        generator=make_generator(0),
        validation_fn=validation,
        n_iter_no_change=3,
    )
    assert result.best_iter == 0
    assert result.best_loss == result.start_validation_loss == 1.0
    assert torch.equal(w.detach(), torch.zeros(3, dtype=torch.float64))


DIVERGING = [
    "SGDMFImputer",
    "DeepMFImputer",
    "AIRNetImputer",
    "MLPImputer",
    "DMFImputer",
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("max_iter", [1, 2, 5])
@pytest.mark.parametrize("lr", [100.0, 1e6])
@pytest.mark.parametrize("name", DIVERGING)
def test_a_too_large_learning_rate_never_returns_garbage(name, lr, max_iter):
    import sklearn_mc

    rng = np.random.RandomState(0)
    X = rng.randn(20, 2) @ rng.randn(2, 6) + 1.0
    X[rng.rand(*X.shape) < 0.25] = np.nan
    est = make_fast(getattr(sklearn_mc, name), learning_rate=lr, max_iter=max_iter)
    try:
        out = est.fit_transform(X)
    except DivergenceError:
        return
    # A fit that returns was rewound to a state no worse than its start.
    low, high = np.nanmin(X), np.nanmax(X)
    span = high - low
    assert np.all((out >= low - span) & (out <= high + span))
    assert est.history_.final_loss <= _optim.FINAL_FACTOR * est.history_.train_loss[0]


# ------------------------------------------------- convergence and history
def _least_squares(max_iter, tol, **kwargs):
    A, y, _ = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    return train(
        [w],
        _loss(A, y, w),
        n_samples=len(y),
        batch_size=None,
        max_iter=max_iter,
        learning_rate=0.05,
        generator=make_generator(0),
        tol=tol,
        **kwargs,
    )


def test_stopping_at_max_iter_with_tol_warns():
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        result = _least_squares(3, 1e-4)
    assert result.stop_reason == "max_iter"


def test_no_convergence_warning_with_tol_zero_or_when_converged():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert _least_squares(3, 0.0).stop_reason == "max_iter"
        result = _least_squares(5000, 1e-2, n_iter_no_change=2)
    assert result.stop_reason == "converged"
    assert result.n_iter < 5000


@pytest.mark.parametrize("name", DIVERGING)
def test_every_gradient_imputer_warns_at_max_iter(name):
    import sklearn_mc

    est = make_fast(getattr(sklearn_mc, name), max_iter=2)
    X = _holes()
    with pytest.warns(ConvergenceWarning, match=f"{name} stopped at max_iter=2"):
        est.fit(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", DIVERGING)
def test_every_gradient_imputer_exposes_the_same_history(name):
    import sklearn_mc

    est = make_fast(getattr(sklearn_mc, name)).fit(_holes())
    hist = est.history_
    assert est.n_iter_ == hist.n_iter == len(est.loss_curve_) >= 1
    assert est.stop_reason_ in {"max_iter", "early_stopping", "converged"}
    assert 0 <= est.best_iter_ <= est.n_iter_
    assert est.validation_loss_curve_ == hist.validation_loss
    assert len(hist.validation_iter) == len(hist.validation_loss)
    assert np.isfinite(hist.final_loss)
    assert name in hist.summary(name)


def _holes():
    rng = np.random.RandomState(0)
    X = rng.randn(20, 2) @ rng.randn(2, 6)
    X[rng.rand(*X.shape) < 0.25] = np.nan
    return X


# ----------------------------------------------------------------- progress
def test_progress_is_plain_lines_and_a_summary_when_not_a_terminal(capsys):
    _least_squares(30, 0.0, verbose=1, desc="Demo")
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.strip().splitlines()
    assert 3 <= len(lines) <= 12
    assert lines[0].startswith("Demo: 3/30 epoch, training loss=")
    assert lines[-1].startswith("Demo: 30/30 epochs, reached max_iter; final training")


def test_no_output_at_verbose_zero(capsys):
    _least_squares(5, 0.0)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("eta", [True, False])
def test_terminal_bar_shows_no_eta_when_the_loop_may_stop_early(monkeypatch, eta):
    monkeypatch.setattr(_optim, "_interactive", lambda: True)
    bar = _optim.progress(10, 1, "Demo", unit="epoch", eta=eta)
    bar.close()
    assert (bar.bar_format is None) == eta
    if not eta:
        assert "remaining" not in bar.bar_format


# ---------------------------------------------------------------- callbacks
class _Recorder(_optim.Callback):
    """Records every hook the loop calls, with the epoch it saw."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, loop, history):
        self.calls.append(("train_begin", loop.epoch))

    def on_epoch_begin(self, loop, history):
        self.calls.append(("epoch_begin", loop.epoch))

    def on_epoch_end(self, loop, history):
        self.calls.append(("epoch_end", loop.epoch, history.train_loss[-1]))

    def on_final_state(self, loop, history):
        self.calls.append(("final_state", loop.epoch))

    def on_train_end(self, loop, history):
        self.calls.append(("train_end", loop.epoch))

    def hooks(self, name):
        return [c[1:] for c in self.calls if c[0] == name]


def test_a_custom_callback_sees_every_epoch():
    rec = _Recorder()
    result = _least_squares(7, 0.0, callbacks=[rec])
    assert rec.calls[0] == ("train_begin", 0)
    assert rec.hooks("epoch_begin") == [(e,) for e in range(7)]
    ends = rec.hooks("epoch_end")
    assert [e for e, _ in ends] == list(range(1, 8))
    assert [loss for _, loss in ends] == result.train_loss
    assert rec.calls[-2:] == [("final_state", 7), ("train_end", 7)]


def test_a_callback_that_rejects_a_state_rewinds_the_loop():
    class RejectOnce(_optim.Callback):
        done = False

        def on_epoch_end(self, loop, history):
            if loop.epoch == 3 and not self.done:
                self.done = True
                raise _optim.Diverged

    rec = _Recorder()
    result = _least_squares(5, 0.0, callbacks=[RejectOnce(), rec])
    assert result.n_rewinds == 1
    assert result.learning_rate == 0.025
    assert result.n_iter == len(result.train_loss) == 5
    # epoch 3 was run twice: rejected, then again after the rewind to its start
    # The rejected epoch 3 had the lowest loss so far, so the checkpoint is its
    # start: it runs again (the recorder, after the rejecting callback, never
    # saw the rejected run).
    assert [e for e, _ in rec.hooks("epoch_end")] == [1, 2, 3, 4, 5]
    assert [e for (e,) in rec.hooks("epoch_begin")] == [0, 1, 2, 2, 3, 4]


def test_a_rewind_gives_callbacks_back_their_checkpoint_state():
    class Count(_optim.Callback):
        def __init__(self):
            self.n = 0

        def on_epoch_end(self, loop, history):
            self.n += 1

        def state(self):
            return self.n

        def restore(self, state):
            self.n = state

    count = Count()
    _, result = _explosive(4.0, 5, callbacks=[count])
    assert result.n_rewinds > 0
    # without the restore the count would include the epochs undone
    assert count.n == result.n_iter == 5


def test_early_stopping_callback_restores_the_best_state():
    A, y, _ = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    states = []

    def validation():  # best after epoch 4, then worse
        states.append(w.detach().clone())
        return abs(len(states) - 5) + 1.0

    stopper = _optim.EarlyStopping(validation, tol=0.0, patience=3)
    result = _least_squares_with(w, A, y, 50, callbacks=[stopper])
    assert result.stop_reason == "early_stopping"
    assert result.best_iter == 4 and result.n_iter == 7
    assert result.best_loss == 1.0
    assert torch.equal(w.detach(), states[4])


def test_early_stopping_without_restore_keeps_the_last_state():
    A, y, _ = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    states = []

    def validation():
        states.append(w.detach().clone())
        return abs(len(states) - 5) + 1.0

    stopper = _optim.EarlyStopping(validation, patience=3, restore_best=False)
    result = _least_squares_with(w, A, y, 50, callbacks=[stopper])
    assert result.stop_reason == "early_stopping" and result.best_iter == 4
    assert torch.equal(w.detach(), states[-1])
    assert not torch.equal(w.detach(), states[4])


def _least_squares_with(w, A, y, max_iter, **kwargs):
    return train(
        [w],
        _loss(A, y, w),
        n_samples=len(y),
        batch_size=None,
        max_iter=max_iter,
        learning_rate=0.01,
        generator=make_generator(0),
        tol=0.0,
        n_iter_no_change=max_iter + 1,  # the training-loss rule stays out
        **kwargs,
    )


class _StopAt(_optim.Callback):
    def __init__(self, epoch, reason):
        self.epoch, self.reason = epoch, reason

    def on_epoch_end(self, loop, history):
        if loop.epoch == self.epoch:
            loop.stop(self.reason)


@pytest.mark.parametrize(
    "kwargs, reason, n_iter",
    [
        ({}, "max_iter", 20),
        ({"stop_fn": lambda epoch: epoch == 4}, "converged", 4),
        ({"callbacks": [_StopAt(6, "budget")]}, "budget", 6),
        ({"tol": 0.5, "n_iter_no_change": 2}, "converged", None),
    ],
)
def test_stop_reason_names_the_rule_that_ended_training(kwargs, reason, n_iter):
    kwargs = {"tol": 0.0, "n_iter_no_change": 100, **kwargs}
    result = _least_squares(20, **kwargs)
    assert result.stop_reason == reason
    if n_iter is not None:
        assert result.n_iter == n_iter
    else:
        assert result.n_iter < 20
    assert reason in result.summary("Demo") or reason == "max_iter"


def test_a_learning_rate_schedule_scales_the_current_rate():
    seen = []

    class Rate(_optim.Callback):
        def on_epoch_end(self, loop, history):
            seen.append(loop.optimizer.param_groups[0]["lr"])

    schedule = _optim.LRSchedule(lambda epoch: 0.5**epoch)
    _least_squares(4, 0.0, callbacks=[schedule, Rate()])
    assert seen == [0.05, 0.025, 0.0125, 0.00625]


def test_default_callbacks_follow_the_keywords():
    def kinds(**kwargs):
        return [type(c).__name__ for c in _optim.default_callbacks(**kwargs)]

    assert kinds(max_iter=20) == ["DivergenceMonitor", "Plateau"]
    # a patience beyond the budget could never stop the loop: no Plateau
    assert kinds(max_iter=5, n_iter_no_change=6) == ["DivergenceMonitor"]
    assert kinds(
        max_iter=5,
        validation_fn=lambda: 0.0,
        on_epoch_start=print,
        stop_fn=bool,
    ) == ["DivergenceMonitor", "EarlyStopping", "Schedule", "StopWhen"]
