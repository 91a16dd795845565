"""Tests of DeepMFImputer and the shared deep linear parameterisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sklearn_mc import DeepMFImputer
from sklearn_mc._deep_linear import (
    entries,
    fold_in,
    fold_in_basis,
    init_factors,
    product,
    right_product,
)
from sklearn_mc._optim import DivergenceError, GroupRMSprop
from sklearn_mc.datasets import make_low_rank, make_mask
from sklearn_mc.metrics import rmse

CPU = torch.device("cpu")


def _factors(shape=(7, 5), depth=3, width=4, scale=1e-2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return init_factors(
        *shape, depth, width, scale, generator=gen, device=CPU, dtype=torch.float64
    )


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_factor_shapes_and_product(depth):
    factors = _factors(depth=depth)
    assert factors[0].shape[1] == 5 and factors[-1].shape[0] == 7
    X = product(factors)
    assert X.shape == (7, 5)
    expected = factors[0]
    for w in factors[1:]:
        expected = w @ expected
    torch.testing.assert_close(X, expected)
    right = right_product(factors)
    if depth == 1:
        assert right is None
    else:
        torch.testing.assert_close(factors[-1] @ right, X)


def test_entries_match_product_without_forming_it():
    factors = _factors(shape=(30, 20), width=10)
    rows = torch.tensor([0, 5, 29, 3])
    cols = torch.tensor([1, 19, 0, 3])
    torch.testing.assert_close(
        entries(factors, rows, cols), product(factors)[rows, cols]
    )


@pytest.mark.parametrize("scale", [1e-3, 1e-1])
def test_init_scale_sets_product_std_and_balance(scale):
    factors = [w.detach() for w in _factors((200, 150), 3, 100, scale)]
    std = float(product(factors).std())
    assert 0.7 * scale < std < 1.4 * scale
    # Balanced in expectation: adjacent Gram matrices have equal traces.
    for lower, upper in zip(factors, factors[1:], strict=False):
        a = float(torch.trace(lower @ lower.T))
        b = float(torch.trace(upper.T @ upper))
        assert 0.7 < a / b < 1.4


def test_fold_in_recovers_rows_of_the_learned_row_space():
    rng = np.random.RandomState(0)
    U, V = rng.randn(40, 3), rng.randn(12, 3)
    factors = [
        torch.tensor(V.T.copy()),
        torch.eye(3, dtype=torch.float64),
        torch.tensor(U),
    ]
    basis, noise = fold_in_basis(factors, residual_variance=0.0)
    assert basis.shape == (3, 12)
    new = rng.randn(5, 3) @ V.T
    mask = np.ones(new.shape, dtype=bool)
    mask[:, ::3] = False
    out = fold_in(basis, noise, np.where(mask, new, np.nan), mask, CPU)
    np.testing.assert_allclose(out, new, atol=1e-4)
    # A row with nothing observed gets the prior mean (column means, 0 here).
    empty = fold_in(
        basis, noise, np.full((1, 12), np.nan), np.zeros((1, 12), bool), CPU
    )
    np.testing.assert_array_equal(empty, 0.0)


@pytest.fixture(scope="module")
def low_rank():
    X = make_low_rank(40, 15, 2, random_state=0)
    X_missing = X.copy()
    X_missing[make_mask(X.shape, "random", missing_rate=0.3, random_state=1)] = np.nan
    return X, X_missing


@pytest.fixture(scope="module")
def fitted(low_rank):
    """One fit on the first 30 rows, shared by the recovery and fold-in tests."""
    X, X_missing = low_rank
    est = DeepMFImputer(learning_rate=1e-2, max_iter=2000, random_state=0)
    return est, est.fit_transform(X_missing[:30])


def test_recovers_low_rank_matrix(low_rank, fitted):
    X, X_missing = low_rank
    est, out = fitted
    hidden = np.isnan(X_missing[:30])
    assert rmse(X[:30], out, hidden) < 0.05 * np.sqrt(np.mean(X**2))
    assert est.n_iter_ >= 1 and len(est.loss_curve_) == est.n_iter_
    assert len(est.factors_) == 3 and est.factors_[1].shape == (15, 15)
    # The implicit bias: the learned product is close to rank 2.
    s = np.linalg.svd(np.linalg.multi_dot(est.factors_[::-1]), compute_uv=False)
    assert s[3] < 0.05 * s[0]


def test_transform_folds_in_unseen_rows(low_rank, fitted):
    X, X_missing = low_rank
    est, _ = fitted
    new, new_missing = X[30:], X_missing[30:]
    hidden = np.isnan(new_missing)
    out = est.transform(new_missing)
    column_means = np.where(hidden, np.nanmean(X_missing[:30], axis=0), new)
    assert rmse(new, out, hidden) < 0.2 * rmse(new, column_means, hidden)
    # A row with every entry missing is completed with the training means.
    empty = est.transform(np.full((1, X.shape[1]), np.nan))
    np.testing.assert_allclose(empty[0], np.nanmean(X_missing[:30], axis=0))


def test_early_stopping_keeps_best_iterate():
    # Noisy data: the unregularised product overfits, the held-out error
    # turns up and training stops well before max_iter.
    X = make_low_rank(40, 15, 2, noise=0.5, random_state=0)
    X[make_mask(X.shape, "random", missing_rate=0.3, random_state=1)] = np.nan
    est = DeepMFImputer(
        learning_rate=3e-2, max_iter=3000, n_iter_no_change=100, random_state=0
    ).fit(X)
    assert est.n_iter_ < 3000
    assert est.best_iter_ < est.n_iter_
    assert min(est.validation_loss_curve_) < est.validation_loss_curve_[-1]
    no_es = DeepMFImputer(
        learning_rate=3e-2, max_iter=50, early_stopping=False, random_state=0
    ).fit(X)
    assert no_es.validation_loss_curve_ == [] and no_es.n_iter_ == 50


def test_depth_three_beats_depth_two_with_few_observations():
    # Arora et al.'s headline in miniature (the benchmark runs the full one).
    X = make_low_rank(30, 30, 2, random_state=4)
    X_missing = np.where(np.random.RandomState(1).rand(*X.shape) < 0.35, X, np.nan)
    hidden = np.isnan(X_missing)
    errors = {}
    for depth in (2, 3):
        est = DeepMFImputer(
            depth=depth,
            learning_rate=1e-2,
            init_scale=1e-4,
            max_iter=1500,
            early_stopping=False,
            random_state=0,
        )
        errors[depth] = rmse(X, est.fit_transform(X_missing), hidden)
    assert errors[3] < 0.5 * errors[2]


def test_minibatch_training(low_rank):
    X, X_missing = low_rank
    hidden = np.isnan(X_missing)
    est = DeepMFImputer(
        batch_size=64, learning_rate=1e-2, max_iter=60, random_state=0
    ).fit(X_missing)
    out = est.transform(X_missing)
    means = np.where(hidden, np.nanmean(X_missing, axis=0), X_missing)
    assert rmse(X, out, hidden) < 0.5 * rmse(X, means, hidden)


def test_divergence_gives_clear_error(low_rank):
    _, X_missing = low_rank
    est = DeepMFImputer(
        optimizer="sgd",
        learning_rate=1e12,
        init_scale=1.0,
        max_iter=20,
        random_state=0,
    )
    with pytest.raises(DivergenceError, match="diverged"):
        est.fit(X_missing)


def test_divergence_recovers_by_halving_the_step(low_rank):
    X, X_missing = low_rank
    # Too large for the first steps, fine after a few halvings.
    est = DeepMFImputer(
        optimizer="sgd",
        learning_rate=20.0,
        init_scale=1.0,
        max_iter=200,
        early_stopping=False,
        random_state=0,
    )
    out = est.fit_transform(X_missing)
    assert np.isfinite(out).all()
    assert np.isfinite(est.loss_curve_).all()


def test_group_rmsprop_steps_along_the_gradient():
    p = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
    opt = GroupRMSprop([p, q], lr=0.1, eps=0.0)
    loss = (p**2).sum() + (q**2).sum()
    loss.backward()
    grads = torch.cat([p.grad, q.grad])
    opt.step()
    step = torch.cat([p.detach() - torch.tensor([1.0, -2.0]), q.detach() - 3.0])
    # One global step size: the update is -lr * grad / ||grad|| on step one.
    torch.testing.assert_close(step, -0.1 * grads / grads.norm())


@pytest.mark.parametrize(
    "params, match",
    [
        ({"depth": 0}, "depth"),
        ({"width": 0}, "width"),
        ({"init_scale": 0.0}, "init_scale"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
    ],
)
def test_bad_parameters(low_rank, params, match):
    _, X_missing = low_rank
    with pytest.raises(ValueError, match=match):
        DeepMFImputer(**params).fit(X_missing)


@pytest.mark.requires_cuda
def test_cuda_path(low_rank):
    X, X_missing = low_rank
    hidden = np.isnan(X_missing)
    est = DeepMFImputer(
        learning_rate=1e-2, max_iter=1000, device="cuda", random_state=0
    )
    out = est.fit_transform(X_missing)
    assert rmse(X, out, hidden) < 0.1 * np.sqrt(np.mean(X**2))
    assert all(isinstance(w, np.ndarray) for w in est.factors_)


def test_default_width_is_capped():
    from sklearn_mc._deep_linear import MAX_DEFAULT_WIDTH, resolve_width

    assert resolve_width(100, 240, None) == 100
    assert resolve_width(943, 1682, None) == MAX_DEFAULT_WIDTH == 256
    assert resolve_width(943, 1682, 900) == 900


def test_sparse_input_is_refused_with_the_reason(low_rank):
    import scipy.sparse as sp

    _, X_missing = low_rank
    rows, cols = np.nonzero(~np.isnan(X_missing))
    S = sp.csr_array((X_missing[rows, cols], (rows, cols)), shape=X_missing.shape)
    with pytest.raises(TypeError, match="DeepMFImputer does not accept sparse"):
        DeepMFImputer(max_iter=2).fit(S)


def test_masked_error_matches_the_autograd_expression():
    # The fused loss (one dense buffer, hand-written backward) has the value
    # and the gradients of the plain masked squared error.
    from sklearn_mc._deep_linear import masked_error

    factors = _factors(shape=(9, 6), depth=3, width=4, scale=1.0)
    gen = torch.Generator().manual_seed(1)
    weights = torch.rand(9, 6, generator=gen) < 0.6
    target = torch.randn(9, 6, generator=gen, dtype=torch.float64) * weights
    loss = masked_error(factors, target, ~weights, 0.25)
    grads = torch.autograd.grad(loss, factors)
    plain = ((product(factors) - target) ** 2 * weights).sum() * 0.25
    expected = torch.autograd.grad(plain, factors)
    torch.testing.assert_close(loss, plain)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_chunked_entries_match_the_product():
    from sklearn_mc._deep_linear import predict_entries_chunked

    factors = _factors(shape=(9, 6), depth=3, width=4, scale=1.0)
    rows = torch.tensor([0, 8, 3, 3, 5])
    cols = torch.tensor([5, 0, 2, 3, 1])
    with torch.no_grad():
        expected = product(factors)[rows, cols]
    torch.testing.assert_close(predict_entries_chunked(factors, rows, cols), expected)


class _DtypeProbe(DeepMFImputer):
    """Records the dtype of the product seen during training."""

    _monitor_interval = 1

    def _monitor(self, n_iter, completion):
        self.seen_dtypes_ = {*getattr(self, "seen_dtypes_", set()), completion.dtype}


def test_training_dtype_follows_the_matrix_size(low_rank, monkeypatch):
    # float64 on small matrices (the papers' sizes), float32 above
    # FLOAT64_MAX_ENTRIES; fitted attributes and outputs float64 either way.
    import sklearn_mc._deep_linear as dl

    _, X_missing = low_rank
    small = _DtypeProbe(max_iter=3, random_state=0, device="cpu")
    small.fit(X_missing)
    assert small.seen_dtypes_ == {torch.float64}
    monkeypatch.setattr(dl, "FLOAT64_MAX_ENTRIES", 10)
    est = _DtypeProbe(max_iter=3, random_state=0, device="cpu")
    out = est.fit_transform(X_missing)
    assert est.seen_dtypes_ == {torch.float32}
    assert out.dtype == np.float64
    assert all(w.dtype == np.float64 for w in est.factors_)
    assert est.components_.dtype == np.float64


def test_no_progress_fit_stops_after_the_default_patience(low_rank):
    # A step too small to change the held-out error: the default stopping
    # rule (patience n_iter_no_change=100 iterations) ends the fit early,
    # not at max_iter (the old patience, 500, ran 5x longer).
    _, X_missing = low_rank
    est = DeepMFImputer(learning_rate=1e-12, max_iter=10000, random_state=0)
    est.fit(X_missing)
    assert est.stop_reason_ == "early_stopping"
    assert est.n_iter_ <= 110
