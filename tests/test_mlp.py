"""Tests of MLPImputer's own behaviour (the shared contract is in test_common)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sklearn_mc._mlp as mlp_module
from sklearn_mc import MLPImputer
from sklearn_mc.datasets import make_low_rank, make_mask
from sklearn_mc.metrics import rmse


def _holes(X, rate, seed):
    X_missing = X.copy()
    X_missing[make_mask(X.shape, "random", missing_rate=rate, random_state=seed)] = (
        np.nan
    )
    return X_missing


def _mean_fill(X_missing, means=None):
    means = np.nanmean(X_missing, axis=0) if means is None else means
    return np.where(np.isnan(X_missing), means, X_missing)


@pytest.fixture(scope="module")
def low_rank():
    X = make_low_rank(400, 10, 2, noise=0.05, random_state=0)
    return X, _holes(X, 0.2, 1)


def test_learns_low_rank_structure_better_than_means(low_rank):
    X, X_missing = low_rank
    hidden = np.isnan(X_missing)
    est = MLPImputer(max_iter=150, device="cpu", random_state=0)
    out = est.fit_transform(X_missing)
    err = rmse(X, out, hidden)
    err_mean = rmse(X, _mean_fill(X_missing), hidden)
    # A rank-2 structure is learnable: far better than column means.
    assert err < 0.5 * err_mean
    assert est.n_iter_ >= 1 and len(est.loss_curve_) == est.n_iter_


def test_unseen_rows_completed_inductively(low_rank):
    X, X_missing = low_rank
    est = MLPImputer(max_iter=150, device="cpu", random_state=0)
    est.fit(X_missing[:300])
    new, new_missing = X[300:], X_missing[300:]
    hidden = np.isnan(new_missing)
    out = est.transform(new_missing)
    observed = ~hidden
    np.testing.assert_array_equal(out[observed], new_missing[observed])
    train_means = np.nanmean(X_missing[:300], axis=0)
    assert rmse(new, out, hidden) < 0.5 * rmse(
        new, _mean_fill(new_missing, train_means), hidden
    )
    # One forward pass per row: a row alone gives the same completion.
    np.testing.assert_allclose(est.transform(new_missing[3:4]), out[3:4], atol=1e-12)


def test_masks_are_redrawn_every_epoch(monkeypatch, low_rank):
    _, X_missing = low_rank
    X_missing = X_missing[:50]
    seen_masks = []
    original = mlp_module._network_input

    def recording(values, visible):
        seen_masks.append(visible.clone())
        return original(values, visible)

    monkeypatch.setattr(mlp_module, "_network_input", recording)
    # Full batch, no validation: exactly one training input per epoch, and
    # one for the loss of the final state (the divergence check).
    MLPImputer(
        max_iter=3,
        batch_size=None,
        early_stopping=False,
        n_iter_no_change=10,
        mask_fraction=0.3,
        device="cpu",
        random_state=0,
    ).fit(X_missing)
    assert len(seen_masks) == 3 + 1
    observed = torch.as_tensor(~np.isnan(X_missing))
    for visible in seen_masks:
        # Only observed entries are ever shown, and about 30 % of them hidden.
        assert not (visible & ~observed).any()
        hidden_share = 1 - visible.sum().item() / observed.sum().item()
        assert 0.2 < hidden_share < 0.4
    assert not torch.equal(seen_masks[0], seen_masks[1])
    assert not torch.equal(seen_masks[1], seen_masks[2])


def test_early_stopping_stops_and_keeps_best():
    # Independent noise: nothing to learn, so the held-out error soon stalls.
    X = np.random.RandomState(0).standard_normal((200, 6))
    X = _holes(X, 0.2, 0)
    est = MLPImputer(max_iter=500, n_iter_no_change=5, device="cpu", random_state=0)
    est.fit(X)
    assert est.stop_reason_ == "early_stopping"
    assert est.n_iter_ < 500
    curve = est.validation_loss_curve_
    assert len(curve) == est.n_iter_
    # The state kept is the best checked, the (untrained) start included.
    best = min(curve + [est.history_.start_validation_loss])
    assert est.history_.best_loss == best
    if est.best_iter_:
        assert curve[est.best_iter_ - 1] == best


def test_without_early_stopping_runs_all_epochs(low_rank):
    _, X_missing = low_rank
    est = MLPImputer(
        max_iter=7,
        early_stopping=False,
        n_iter_no_change=100,
        device="cpu",
        random_state=0,
    ).fit(X_missing)
    assert est.n_iter_ == 7
    assert est.validation_loss_curve_ == []
    assert est.stop_reason_ == "max_iter"


def test_reproducible_and_seed_dependent(low_rank):
    _, X_missing = low_rank
    X_missing = X_missing[:100]
    kwargs = dict(max_iter=5, device="cpu")
    a = MLPImputer(random_state=1, **kwargs).fit_transform(X_missing)
    b = MLPImputer(random_state=1, **kwargs).fit_transform(X_missing)
    c = MLPImputer(random_state=2, **kwargs).fit_transform(X_missing)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fit_transform_equals_fit_then_transform(low_rank):
    # Held-out validation entries are inputs again after fit.
    _, X_missing = low_rank
    X_missing = X_missing[:100]
    kwargs = dict(max_iter=5, device="cpu", random_state=0)
    a = MLPImputer(**kwargs).fit_transform(X_missing)
    b = MLPImputer(**kwargs).fit(X_missing).transform(X_missing)
    np.testing.assert_array_equal(a, b)


def test_transform_in_chunks_matches(monkeypatch, low_rank):
    _, X_missing = low_rank
    est = MLPImputer(max_iter=3, device="cpu", random_state=0).fit(X_missing)
    whole = est.transform(X_missing)
    monkeypatch.setattr(mlp_module, "CHUNK_ROWS", 7)
    np.testing.assert_allclose(est.transform(X_missing), whole, atol=1e-12)


def test_hidden_layer_sizes():
    X = _holes(make_low_rank(30, 5, 2, random_state=0), 0.2, 0)
    est = MLPImputer(max_iter=2, device="cpu", random_state=0).fit(X)
    assert est.hidden_layer_sizes_ == (64, 64)  # 4 * 5 clipped up to 64
    linears = [m for m in est.network_ if isinstance(m, torch.nn.Linear)]
    assert [m.in_features for m in linears] == [10, 64, 64]
    assert linears[-1].out_features == 5
    X_wide = _holes(make_low_rank(30, 40, 2, random_state=0), 0.2, 0)
    est = MLPImputer(max_iter=1, device="cpu", random_state=0).fit(X_wide)
    assert est.hidden_layer_sizes_ == (160, 160)
    est = MLPImputer(hidden_layer_sizes=(7,), max_iter=2, device="cpu").fit(X)
    assert [m.out_features for m in est.network_ if hasattr(m, "out_features")] == [
        7,
        5,
    ]
    est = MLPImputer(hidden_layer_sizes=(), max_iter=2, device="cpu").fit(X)
    assert len(est.network_) == 1  # a linear model


@pytest.mark.parametrize(
    "params",
    [
        {"hidden_layer_sizes": (0,)},
        {"hidden_layer_sizes": (2.5,)},
        {"hidden_layer_sizes": ("a",)},
        {"mask_fraction": 0.0},
        {"mask_fraction": 1.0},
        {"batch_size": 0},
        {"learning_rate": 0.0},
        {"validation_fraction": 1.0},
    ],
)
def test_bad_parameters_raise(params):
    X = _holes(make_low_rank(20, 4, 1, random_state=0), 0.2, 0)
    with pytest.raises(ValueError):
        MLPImputer(max_iter=1, device="cpu", **params).fit(X)


def test_verbose_progress(capsys):
    X = _holes(make_low_rank(20, 4, 1, random_state=0), 0.2, 0)
    MLPImputer(max_iter=2, verbose=1, device="cpu", random_state=0).fit(X)
    assert "MLPImputer" in capsys.readouterr().err
