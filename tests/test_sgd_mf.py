"""SGDMFImputer: Teoh's COMP6248 notes reproduced, fold-in, penalty path, divergence."""

from __future__ import annotations

import numpy as np
import pytest

from sklearn_mc import SGDMFImputer
from sklearn_mc._optim import DivergenceError
from sklearn_mc.datasets import make_low_rank, make_mask
from sklearn_mc.metrics import relative_error, rmse

# Teoh's COMP6248 notes: the 3 x 3 matrix, and the rank-2 truncated-SVD loss it reports.
A = np.array(
    [
        [0.3374, 0.6005, 0.1735],
        [3.3359, 0.0492, 1.8374],
        [2.9407, 0.5301, 2.2620],
    ]
)
EY_LOSS = 0.12191

#: the plain U Vᵀ model of those notes: no biases, no scaling, no penalty at the
#: end of the path. A quicker path and a larger step than the defaults keep the
#: tests fast.
PLAIN = dict(
    alpha=0.0,
    biases=False,
    scaling="none",
    early_stopping=False,
    tol=0.0,
    random_state=0,
)
FAST = dict(max_iter=400, alpha_decay=0.95, learning_rate=0.05)


def _holes(X, rate, seed):
    X_missing = X.copy()
    X_missing[make_mask(X.shape, "random", missing_rate=rate, random_state=seed)] = (
        np.nan
    )
    return X_missing


def test_seed_constant_is_the_eckart_young_optimum():
    s = np.linalg.svd(A, compute_uv=False)
    assert s[2] ** 2 == pytest.approx(EY_LOSS, rel=1e-3)


def test_teoh_rank2_reaches_truncated_svd_loss():
    est = SGDMFImputer(rank=2, **PLAIN, **FAST).fit(A)
    X_hat = est.reconstruct()
    np.testing.assert_allclose(X_hat, est.row_factors_ @ est.components_)
    assert np.linalg.matrix_rank(X_hat, tol=1e-8) == 2
    loss = float(np.sum((A - X_hat) ** 2))
    # Eckart–Young: no rank-2 matrix does better than the truncated SVD.
    assert loss >= EY_LOSS * (1 - 1e-3)
    assert loss <= EY_LOSS * 1.01
    # fit_transform of a complete matrix is the matrix itself.
    np.testing.assert_array_equal(est.fit_transform(A), A)


def test_teoh_masked_fits_the_observed_entries():
    A_missing = A.copy()
    A_missing[1, 0] = A_missing[2, 1] = np.nan
    observed = ~np.isnan(A_missing)
    est = SGDMFImputer(rank=2, **PLAIN, **FAST).fit(A_missing)
    X_hat = est.reconstruct()
    assert np.sum((A - X_hat)[observed] ** 2) <= 1e-3
    out = est.transform(A_missing)
    np.testing.assert_array_equal(out[observed], A[observed])
    np.testing.assert_allclose(out[~observed], X_hat[~observed], atol=1e-2)


def test_exact_recovery_with_default_scaling_and_biases():
    # Standard scaling centres the columns; the column biases absorb that
    # shift exactly, so rank 3 stays enough.
    X = make_low_rank(60, 40, 3, random_state=0) + 5.0
    X_missing = _holes(X, 0.3, 1)
    hidden = np.isnan(X_missing)
    est = SGDMFImputer(
        rank=3, alpha=0.0, early_stopping=False, tol=0.0, random_state=0, **FAST
    )
    out = est.fit_transform(X_missing)
    assert relative_error(X, out, hidden) < 1e-4


def test_defaults_beat_column_means_clearly():
    X = make_low_rank(60, 15, 3, noise=0.1, random_state=0)
    X_missing = _holes(X, 0.25, 1)
    hidden = np.isnan(X_missing)
    est = SGDMFImputer(random_state=0)
    out = est.fit_transform(X_missing)
    means = np.where(hidden, np.nanmean(X_missing, axis=0), X_missing)
    assert rmse(X, out, hidden) < 0.3 * rmse(X, means, hidden)
    # Early stopping ran on held-out entries and chose a point on the path.
    assert est.validation_loss_curve_
    assert est.alpha_ >= est.alpha


def test_transform_is_the_fold_in_of_the_fitted_objective():
    # At a stationary point every row factor solves the ridge problem the
    # fold-in solves, so transform(X_train) reproduces fit_transform(X_train).
    X = make_low_rank(50, 20, 2, noise=0.05, random_state=0)
    X_missing = _holes(X, 0.3, 2)
    # Full-batch SGD with momentum converges to the stationary point itself
    # (Adam keeps hovering around it).
    est = SGDMFImputer(
        rank=2,
        alpha=0.01,
        optimizer="sgd",
        learning_rate=0.1,
        alpha_decay=0.95,
        max_iter=500,
        early_stopping=False,
        tol=0.0,
        random_state=0,
    )
    out = est.fit_transform(X_missing)
    np.testing.assert_allclose(est.transform(X_missing), out, atol=1e-5)


def test_fold_in_completes_new_rows():
    X = make_low_rank(200, 30, 3, random_state=0)
    X_missing = _holes(X, 0.3, 3)
    est = SGDMFImputer(
        rank=3, alpha=0.0, early_stopping=False, tol=0.0, random_state=0, **FAST
    )
    est.fit(X_missing[:150])
    new = X_missing[150:]
    out = est.transform(new)
    assert relative_error(X[150:], out, np.isnan(new)) < 1e-4
    # reconstruct() folds in the same way but keeps the model's observed values.
    X_hat = est.reconstruct(new)
    np.testing.assert_allclose(X_hat[np.isnan(new)], out[np.isnan(new)])


def test_fold_in_in_blocks_matches_one_block(monkeypatch):
    # transform folds rows in blocks of _FOLD_IN_ENTRIES entries: blocks of
    # 7 rows (6 blocks, the last one short) give the rows one block gives.
    from sklearn_mc import _sgd_mf_factors

    X_missing = _holes(make_low_rank(40, 10, 2, random_state=0), 0.2, 0)
    est = SGDMFImputer(rank=2, max_iter=50, random_state=0).fit(X_missing)
    whole = est.transform(X_missing)
    monkeypatch.setattr(_sgd_mf_factors, "_FOLD_IN_ENTRIES", 70)
    np.testing.assert_allclose(est.transform(X_missing), whole, rtol=1e-12)


def test_row_without_observations_gets_the_column_model():
    X = make_low_rank(40, 10, 2, random_state=0)
    est = SGDMFImputer(rank=2, max_iter=50, random_state=0).fit(_holes(X, 0.2, 0))
    empty = np.full((1, 10), np.nan)
    out = est.transform(empty)
    expected = (est.intercept_ + est.column_bias_) * est._scale_factor
    np.testing.assert_allclose(out[0], expected + est._scale_shift)


def test_standard_scaling_makes_the_fit_unit_free():
    X = make_low_rank(40, 8, 2, random_state=0)
    X_missing = _holes(X, 0.25, 4)
    scale = np.logspace(-3, 4, 8)
    shift = np.linspace(-50, 50, 8)
    params = dict(rank=2, max_iter=40, random_state=0)
    out = SGDMFImputer(**params).fit_transform(X_missing)
    out_scaled = SGDMFImputer(**params).fit_transform(X_missing * scale + shift)
    np.testing.assert_allclose(out_scaled, out * scale + shift, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    "params",
    [
        dict(optimizer="sgd", learning_rate=0.1),
        dict(optimizer="rmsprop", learning_rate=0.01),
        dict(batch_size=200, max_iter=50, alpha_decay=0.9, learning_rate=0.03),
        dict(init="spectral"),
    ],
    ids=["sgd", "rmsprop", "minibatch", "spectral"],
)
def test_other_optimisers_batches_and_init_work(params):
    X = make_low_rank(60, 20, 2, random_state=0)
    X_missing = _holes(X, 0.3, 5)
    hidden = np.isnan(X_missing)
    kwargs = dict(rank=2, alpha=0.0, early_stopping=False, max_iter=300)
    kwargs.update(params)
    a = SGDMFImputer(random_state=0, **kwargs).fit_transform(X_missing)
    b = SGDMFImputer(random_state=0, **kwargs).fit_transform(X_missing)
    np.testing.assert_array_equal(a, b)
    assert relative_error(X, a, hidden) < 0.1


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("learning_rate", [10.0, 1e3, 1e8])
def test_too_large_learning_rate_errors_or_recovers(optimizer, learning_rate):
    X = make_low_rank(40, 12, 3, random_state=0)
    X_missing = _holes(X, 0.25, 1)
    est = SGDMFImputer(
        optimizer=optimizer, learning_rate=learning_rate, max_iter=100, random_state=0
    )
    try:
        out = est.fit_transform(X_missing)
    except DivergenceError as exc:
        assert "learning_rate" in str(exc)
        return
    # Recovered: the guard lowered the step size and the output is sound.
    assert np.isfinite(out).all()
    assert est.learning_rate_ < learning_rate
    means = np.where(np.isnan(X_missing), np.nanmean(X_missing, axis=0), X_missing)
    assert rmse(X, out, np.isnan(X_missing)) < 2 * rmse(X, means, np.isnan(X_missing))


def test_huge_learning_rate_raises_divergence_error():
    X = make_low_rank(40, 12, 3, random_state=0)
    with pytest.raises(DivergenceError, match="diverged"):
        SGDMFImputer(learning_rate=1e8, random_state=0).fit(_holes(X, 0.25, 1))


def test_without_path_the_penalty_is_constant():
    X = make_low_rank(30, 10, 2, random_state=0)
    est = SGDMFImputer(alpha=0.05, alpha_init=None, max_iter=20, random_state=0)
    est.fit(_holes(X, 0.2, 0))
    assert est.alpha_ == 0.05


def test_rank_is_capped_and_attributes_have_their_shapes():
    X_missing = _holes(make_low_rank(30, 4, 2, random_state=0), 0.2, 0)
    est = SGDMFImputer(rank=10, max_iter=10, random_state=0).fit(X_missing)
    assert est.rank_ == 4
    assert est.components_.shape == (4, 4)
    assert est.row_factors_.shape == (30, 4)
    assert est.row_bias_.shape == (30,) and est.column_bias_.shape == (4,)
    assert est.n_iter_ >= 1 and len(est.loss_curve_) == est.n_iter_


@pytest.mark.parametrize(
    "params",
    [
        dict(rank=0),
        dict(alpha=-1.0),
        dict(alpha_decay=0.0),
        dict(optimizer="lbfgs"),
        dict(batch_size=0),
        dict(learning_rate=0.0),
        dict(scaling="robust"),
        dict(validation_fraction=1.0),
    ],
)
def test_bad_parameters_raise_value_error(params):
    with pytest.raises(ValueError):
        SGDMFImputer(**params).fit(np.array([[1.0, np.nan], [2.0, 3.0]]))


def test_constant_data_needs_no_training():
    X = np.full((5, 3), 2.5)
    X[1, 2] = X[3, 0] = np.nan
    est = SGDMFImputer(random_state=0)
    out = est.fit_transform(X)
    np.testing.assert_allclose(out, 2.5)
    assert est.n_iter_ == 1


@pytest.mark.requires_cuda
def test_cuda_fit_matches_cpu():
    X = make_low_rank(60, 40, 3, random_state=0)
    X_missing = _holes(X, 0.3, 1)
    hidden = np.isnan(X_missing)
    params = dict(rank=3, alpha=0.0, early_stopping=False, tol=0.0, **FAST)
    cpu = SGDMFImputer(device="cpu", random_state=0, **params).fit(X_missing)
    gpu = SGDMFImputer(device="cuda", random_state=0, **params).fit(X_missing)
    out_gpu = gpu.transform(X_missing)
    assert relative_error(X, out_gpu, hidden) < 1e-4
    np.testing.assert_allclose(out_gpu, cpu.transform(X_missing), atol=1e-4)


# ------------------------------------------------------------ rating data
@pytest.mark.parametrize("seed, shape", [(0, (120, 80)), (1, (90, 110))])
def test_defaults_beat_item_means_on_held_out_ratings_at_every_rank(seed, shape):
    # Noisy, popularity-skewed 1..5 ratings; the defaults (penalty path chosen
    # by early stopping on held-out entries, biases) must not overfit into
    # worse-than-baseline error at any rank a user might pass.
    from sklearn_mc._observed import ObservedEntries
    from sklearn_mc.datasets import make_ratings

    S = make_ratings(*shape, density=0.15, output="sparse", random_state=seed)
    train, test = ObservedEntries.from_sparse(S).split(0.2, random_state=seed)
    counts = train.col_counts()
    item_mean = np.bincount(train.cols, weights=train.values, minlength=shape[1])
    item_mean = np.where(
        counts > 0, item_mean / np.maximum(counts, 1), train.values.mean()
    )
    baseline = np.sqrt(np.mean((item_mean[test.cols] - test.values) ** 2))
    for rank in (2, 5, 10, 20, 50):
        est = SGDMFImputer(rank=rank, random_state=0).fit(train.to_csr())
        pred = est.predict_entries(test.rows, test.cols)
        error = np.sqrt(np.mean((pred - test.values) ** 2))
        assert error < 0.99 * baseline, (rank, error, baseline)


def test_penalty_path_advances_per_step_with_mini_batches():
    # With mini-batches the path is counted in optimiser steps, so the number
    # of epochs it needs shrinks with the number of steps per epoch.
    from sklearn_mc._sgd_mf_path import _check_interval, _steps_per_epoch

    assert _steps_per_epoch(1000, None) == 1
    assert _steps_per_epoch(1000, 100) == 10
    assert _check_interval(True, 0.99, 1) == 11
    assert _check_interval(True, 0.99, 10) == 2
    assert _check_interval(True, 0.99, 100) == 1
    X = make_low_rank(40, 30, 2, random_state=0)
    est = SGDMFImputer(
        rank=2, batch_size=100, max_iter=3, early_stopping=False, random_state=0
    ).fit(X)
    steps = _steps_per_epoch(X.size, 100)
    start = est.alpha_ - est.alpha  # penalty above alpha after the last epoch
    assert start > 0
    # after 3 epochs of 12 steps the path has fallen by 0.99 ** 24 from epoch 0
    est1 = SGDMFImputer(
        rank=2, batch_size=100, max_iter=1, early_stopping=False, random_state=0
    ).fit(X)
    ratio = (est.alpha_ - est.alpha) / (est1.alpha_ - est1.alpha)
    assert ratio == pytest.approx(0.99 ** (2 * steps))


def test_sparse_products_use_sorted_entries_as_they_are():
    # Issue 14 item 7: the sparse tensor of the (row-major, unique) training
    # entries is flagged coalesced and uses the (2, nnz) index tensor without
    # a copy; unsorted entries are still coalesced, to the same matrix.
    import torch

    from sklearn_mc._sgd_mf_factors import _index_pair, _sparse

    rng = np.random.RandomState(0)
    dense = rng.randn(30, 7) * (rng.rand(30, 7) < 0.6)
    r, c = np.nonzero(dense)
    index = torch.as_tensor(np.stack([r, c]))
    vals = torch.as_tensor(dense[r, c])
    assert _index_pair(index[0], index[1]).data_ptr() == index.data_ptr()
    S = _sparse(index[0], index[1], vals, dense.shape)
    assert S.is_coalesced()
    np.testing.assert_array_equal(S.to_dense().numpy(), dense)
    order = torch.as_tensor(rng.permutation(r.size))
    U = _sparse(index[0][order], index[1][order], vals[order], dense.shape)
    assert U.is_coalesced()
    np.testing.assert_array_equal(U.to_dense().numpy(), dense)


def test_dense_fit_uses_the_entries_not_a_dense_scaled_copy(monkeypatch):
    # The base hands SGDMF its scaled observed entries; the dense scaled copy
    # of X (n_samples x n_features) is not made, and the fit is the sparse one.
    import scipy.sparse as sp

    from sklearn_mc._base import BaseMatrixImputer

    X = make_low_rank(40, 12, 2, random_state=1)
    X[make_mask(X.shape, "random", missing_rate=0.3, random_state=1)] = np.nan

    def refuse(self, X):
        raise AssertionError("dense scaled copy made")

    monkeypatch.setattr(BaseMatrixImputer, "_scale", refuse)
    dense = SGDMFImputer(max_iter=5, random_state=0).fit(X)
    r, c = np.nonzero(~np.isnan(X))
    S = sp.csr_array((X[r, c], (r, c)), shape=X.shape)
    sparse = SGDMFImputer(max_iter=5, random_state=0).fit(S)
    np.testing.assert_array_equal(dense.row_factors_, sparse.row_factors_)
    np.testing.assert_array_equal(dense.components_, sparse.components_)


def test_training_layout_uses_int32_indices_and_releases_the_handover():
    # Issue 14 (memory): the training entries keep int32 indices where the
    # shape allows, the values handed over by the base are released once the
    # split is made, and the sparse sample and its transpose share one index
    # array and the values (S.mH would clone both); products are unchanged.
    import torch

    from sklearn_mc._observed import ObservedEntries
    from sklearn_mc._sgd_mf_factors import _hold_out, _sparse_pair

    X = make_low_rank(40, 9, 2, random_state=0)
    X[make_mask(X.shape, "random", missing_rate=0.3, random_state=0)] = np.nan
    e = ObservedEntries.from_dense(X)
    rows, cols = torch.as_tensor(e.rows), torch.as_tensor(e.cols)
    vals = torch.as_tensor(e.values)
    (r, c, v), held = _hold_out(rows, cols, vals, X.shape, True, 0.1, 0)
    assert r.dtype == c.dtype == held[0].dtype == torch.int32
    S, St = _sparse_pair(r, c, v, X.shape)
    assert St._values().data_ptr() == S._values().data_ptr() == v.data_ptr()
    Q = torch.randn(X.shape[0], 3, dtype=torch.float64)
    assert torch.equal(torch.sparse.mm(St, Q), torch.sparse.mm(S.mH, Q))
    assert torch.equal(St.to_dense(), S.to_dense().T)

    handed = {}

    class Spy(SGDMFImputer):
        def _fit_entries(self, entries):
            handed["entries"] = entries
            super()._fit_entries(entries)

    Spy(rank=2, max_iter=3, random_state=0).fit(X)
    assert handed["entries"].values is None
