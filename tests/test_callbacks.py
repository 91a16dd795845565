"""The training loop's callbacks (``sklearn_mc._callbacks``) and the progress
display (``sklearn_mc._progress``), driven through ``_optim.train``."""

import os
import sys

import pytest
import torch

from sklearn_mc import _progress
from sklearn_mc._callbacks import (
    Callback,
    Diverged,
    EarlyStopping,
    LRSchedule,
    _all_finite,
)
from sklearn_mc._optim import train
from sklearn_mc._torch import make_generator

sys.path.insert(0, os.path.dirname(__file__))
# the small least-squares problems the training-loop tests use
from test_optim import (  # noqa: E402
    _explosive,
    _least_squares,
    _regression,
    _train_least_squares,
)


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
    monkeypatch.setattr(_progress, "_interactive", lambda: True)
    bar = _progress.progress(10, 1, "Demo", unit="epoch", eta=eta)
    bar.close()
    assert (bar.bar_format is None) == eta
    if not eta:
        assert "remaining" not in bar.bar_format


# ---------------------------------------------------------------- callbacks
class _Recorder(Callback):
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
    class RejectOnce(Callback):
        done = False

        def on_epoch_end(self, loop, history):
            if loop.epoch == 3 and not self.done:
                self.done = True
                raise Diverged

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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_finite_agrees_with_isfinite(dtype):
    gen = torch.Generator().manual_seed(0)
    shapes = [(), (0,), (1,), (7,), (3, 5), (40, 40)]
    for shape in shapes:
        base = torch.randn(shape, generator=gen, dtype=dtype) * 1e30
        assert _all_finite([base])
        for bad in (float("nan"), float("inf"), -float("inf")):
            for at in range(min(base.numel(), 3)):
                t = base.clone().flatten()
                t[(at * 7919) % t.numel()] = bad
                t = t.reshape(shape)
                assert not _all_finite([t]) and not bool(torch.isfinite(t).all())
                assert not _all_finite([base, t])  # any tensor of the list
    assert _all_finite([]) and _all_finite([torch.zeros(0, 3)])
    w = torch.ones(4, dtype=dtype, requires_grad=True)
    assert _all_finite([w])  # a parameter, no graph built


def test_a_non_finite_parameter_with_a_finite_loss_rewinds():
    # ``junk`` takes no part in the loss: only the parameter check sees it.
    A, y, _ = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    junk = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    spoiled = []

    def spoil(epoch):
        if epoch == 2 and not spoiled:
            spoiled.append(epoch)
            with torch.no_grad():
                junk[3] = float("nan")

    def loss_fn(idx):
        return ((A @ w - y) ** 2).mean() + 0.0 * junk[:3].sum()

    result = train(
        [w, junk],
        loss_fn,
        n_samples=len(y),
        batch_size=None,
        max_iter=6,
        learning_rate=0.05,
        generator=make_generator(0),
        tol=0.0,
        n_iter_no_change=None,
        on_epoch_start=spoil,
    )
    assert spoiled and result.n_rewinds == 1 and result.n_iter == 6
    assert bool(torch.isfinite(junk).all())


def test_a_rewind_gives_callbacks_back_their_checkpoint_state():
    class Count(Callback):
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

    stopper = EarlyStopping(validation, tol=0.0, patience=3)
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

    stopper = EarlyStopping(validation, patience=3, restore_best=False)
    result = _least_squares_with(w, A, y, 50, callbacks=[stopper])
    assert result.stop_reason == "early_stopping" and result.best_iter == 4
    assert torch.equal(w.detach(), states[-1])
    assert not torch.equal(w.detach(), states[4])


def _least_squares_with(w, A, y, max_iter, **kwargs):
    return _train_least_squares(
        w,
        A,
        y,
        max_iter,
        learning_rate=0.01,
        tol=0.0,
        n_iter_no_change=None,  # the training-loss rule stays out
        **kwargs,
    )


class _StopAt(Callback):
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

    class Rate(Callback):
        def on_epoch_end(self, loop, history):
            seen.append(loop.optimizer.param_groups[0]["lr"])

    schedule = LRSchedule(lambda epoch: 0.5**epoch)
    _least_squares(4, 0.0, callbacks=[schedule, Rate()])
    assert seen == [0.05, 0.025, 0.0125, 0.00625]


def test_plateau_checks_only_from_start_and_every_few_epochs():
    # A loss that never improves: the default plateau stops after `patience`
    # checks (the first one counts too: ``inf - tol * inf`` is NaN, the
    # off-by-one kept so that no fit moves); judged every 3rd epoch from
    # epoch 10 on, the checks are epochs 12, 15 and 18.
    from types import SimpleNamespace

    from sklearn_mc._callbacks import Plateau

    def run(rule):
        stopped = []
        loop = SimpleNamespace(epoch=0, max_iter=100, stop=stopped.append)
        history = SimpleNamespace(train_loss=[], best_iter=0)
        rule.on_train_begin(loop, history)
        for epoch in range(1, 100):
            loop.epoch = epoch
            history.train_loss.append(1.0)
            rule.on_epoch_end(loop, history)
            if stopped:
                return epoch
        return None

    assert run(Plateau(tol=0.0, patience=3)) == 3
    assert run(Plateau(tol=0.0, patience=3, every=3, start=10)) == 18
