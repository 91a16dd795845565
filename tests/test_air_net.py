"""Tests of AIRNetImputer: fit, size guard, schedules, fold-in (the Laplacian
parameterisation itself: ``test_air_net_laplacian.py``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from sklearn_mc import AIRNetImputer, DeepMFImputer
from sklearn_mc.metrics import rmse


def _community_matrix(n_rows=36, n_cols=24, n_groups=3, seed=0):
    """Rows and columns in groups; entries depend on the two groups (+ noise)."""
    rng = np.random.RandomState(seed)
    row_group = np.arange(n_rows) % n_groups
    col_group = np.arange(n_cols) % n_groups
    core = rng.randn(n_groups, n_groups) * 2
    X = core[row_group][:, col_group] + 0.05 * rng.randn(n_rows, n_cols)
    return X


#: The authors' schedule (final iterate, Laplacians every step): the small
#: community matrices below stand in for the papers' matrices, on which
#: ``early_stopping="auto"`` is off; at 36 x 24 the table rule would turn it on.
PAPER = {"early_stopping": False}


@pytest.fixture(scope="module")
def community():
    X = _community_matrix()
    rng = np.random.RandomState(1)
    X_missing = np.where(rng.rand(*X.shape) < 0.4, X, np.nan)
    return X, X_missing


def test_fits_and_exposes_laplacians(community):
    X, X_missing = community
    est = AIRNetImputer(learning_rate=1e-2, max_iter=400, random_state=0, **PAPER)
    out = est.fit_transform(X_missing)
    hidden = np.isnan(X_missing)
    means = np.where(hidden, np.nanmean(X_missing, axis=0), X_missing)
    assert rmse(X, out, hidden) < 0.3 * rmse(X, means, hidden)
    assert est.laplacian_rows_.shape == (36, 36)
    assert est.laplacian_cols_.shape == (24, 24)
    assert isinstance(est.laplacian_rows_, np.ndarray)
    assert est.regularizer_curve_.shape[1] == 2
    assert len(est.loss_curve_) == est.n_iter_
    # The learned row graph links rows of the same group more than others.
    group = np.arange(36) % 3
    weights = -est.laplacian_rows_
    same = group[:, None] == group[None, :]
    np.fill_diagonal(same, False)
    other = group[:, None] != group[None, :]
    assert weights[same].mean() > 3 * weights[other].mean()


def test_beats_deep_mf_on_community_structure(community):
    X, X_missing = community
    hidden = np.isnan(X_missing)
    common = {"learning_rate": 1e-2, "max_iter": 400, "random_state": 0}
    air = AIRNetImputer(**common, **PAPER).fit_transform(X_missing)
    deep = DeepMFImputer(early_stopping=False, **common).fit_transform(X_missing)
    assert rmse(X, air, hidden) < rmse(X, deep, hidden)


def test_zero_lambda_disables_a_side(community):
    _, X_missing = community
    est = AIRNetImputer(lambda_rows=0.0, max_iter=5, random_state=0).fit(X_missing)
    assert est.laplacian_rows_ is None and est.laplacian_cols_ is not None
    np.testing.assert_array_equal(est.regularizer_curve_[:, 0], 0.0)


def test_both_lambdas_zero_is_deep_mf(community):
    _, X_missing = community
    params = {"learning_rate": 1e-2, "max_iter": 30, "random_state": 0}
    air = AIRNetImputer(
        lambda_rows=0.0, lambda_cols=0.0, tol=0.0, early_stopping=False, **params
    )
    deep = DeepMFImputer(early_stopping=False, tol=0.0, **params)
    np.testing.assert_allclose(
        air.fit_transform(X_missing), deep.fit_transform(X_missing), atol=1e-10
    )


def test_size_guard_drops_the_row_side_with_a_warning():
    # A tall table: the row Laplacian would be too large, the column one fits.
    rng = np.random.RandomState(0)
    X = rng.randn(60, 3) @ rng.randn(3, 8)
    X[rng.rand(*X.shape) < 0.2] = np.nan
    est = AIRNetImputer(max_laplacian_size=50, max_iter=20, random_state=0)
    with pytest.warns(UserWarning, match="row Laplacian would be 60 x 60"):
        out = est.fit_transform(X)
    assert np.isfinite(out).all()
    assert est.laplacian_rows_ is None
    assert est.laplacian_cols_.shape == (8, 8)
    # Within the limit no warning is raised.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)  # 5 epochs on purpose
        AIRNetImputer(max_laplacian_size=None, max_iter=5, random_state=0).fit(X)


def test_delta_rule_stops_training():
    X = _community_matrix(18, 12, 3)
    X_missing = np.where(np.random.RandomState(0).rand(*X.shape) < 0.5, X, np.nan)
    est = AIRNetImputer(
        learning_rate=1e-2,
        max_iter=5000,
        tol=1e-4,
        n_iter_no_change=20,
        early_stopping=False,
        random_state=0,
    ).fit(X_missing)
    assert est.n_iter_ < 5000
    tail = np.abs(np.diff(est.regularizer_curve_[-21:], axis=0))
    assert (tail < 1e-4).all()


def test_transform_folds_in_unseen_rows(community):
    X, X_missing = community
    est = AIRNetImputer(learning_rate=1e-2, max_iter=400, random_state=0, **PAPER)
    est.fit(X_missing[:30])
    new, new_missing = X[30:], X_missing[30:]
    hidden = np.isnan(new_missing)
    out = est.transform(new_missing)
    means = np.where(hidden, np.nanmean(X_missing[:30], axis=0), new)
    assert rmse(new, out, hidden) < 0.3 * rmse(new, means, hidden)
    np.testing.assert_array_equal(out[~hidden], new_missing[~hidden])


def test_verbose_reports_regularisers(community, capsys):
    _, X_missing = community
    AIRNetImputer(max_iter=3, verbose=2, random_state=0).fit(X_missing)
    err = capsys.readouterr().err
    assert "row regulariser" in err and "column regulariser" in err


@pytest.mark.parametrize(
    "params, match",
    [
        ({"lambda_rows": -1.0}, "lambda_rows"),
        ({"lambda_cols": "big"}, "lambda_cols"),
        ({"max_laplacian_size": 0}, "max_laplacian_size"),
        ({"tol": -1.0}, "tol"),
        ({"depth": 0}, "depth"),
        ({"laplacian_interval": 0}, "laplacian_interval"),
        ({"laplacian_interval": "often"}, "laplacian_interval"),
    ],
)
def test_bad_parameters(community, params, match):
    _, X_missing = community
    with pytest.raises(ValueError, match=match):
        AIRNetImputer(**params).fit(X_missing)


@pytest.mark.requires_cuda
def test_cuda_path(community):
    X, X_missing = community
    est = AIRNetImputer(learning_rate=1e-2, max_iter=400, device="cuda", random_state=0)
    out = est.fit_transform(X_missing)
    hidden = np.isnan(X_missing)
    means = np.where(hidden, np.nanmean(X_missing, axis=0), X_missing)
    assert rmse(X, out, hidden) < 0.3 * rmse(X, means, hidden)


def test_narrow_width_fits(community):
    # width below both sides takes the factored regulariser path
    X, X_missing = community
    est = AIRNetImputer(width=6, learning_rate=1e-2, max_iter=400, random_state=0)
    out = est.fit_transform(X_missing)
    hidden = np.isnan(X_missing)
    means = np.where(hidden, np.nanmean(X_missing, axis=0), X_missing)
    assert rmse(X, out, hidden) < 0.3 * rmse(X, means, hidden)


def test_sparse_input_is_refused_with_the_reason(community):
    import scipy.sparse as sp

    _, X_missing = community
    rows, cols = np.nonzero(~np.isnan(X_missing))
    S = sp.csr_array((X_missing[rows, cols], (rows, cols)), shape=X_missing.shape)
    with pytest.raises(TypeError, match="AIRNetImputer does not accept sparse"):
        AIRNetImputer(max_iter=2).fit(S)


class _DtypeProbe(AIRNetImputer):
    """Records the dtype of the product seen during training."""

    _monitor_interval = 1

    def _monitor(self, n_iter, completion):
        self.seen_dtypes_ = {*getattr(self, "seen_dtypes_", set()), completion.dtype}


def test_training_is_float32_above_the_size_outputs_float64(community, monkeypatch):
    import sklearn_mc._deep_linear as dl

    _, X_missing = community
    monkeypatch.setattr(dl, "FLOAT64_MAX_ENTRIES", 10)
    est = _DtypeProbe(max_iter=3, random_state=0, device="cpu")
    out = est.fit_transform(X_missing)
    assert est.seen_dtypes_ == {torch.float32}
    assert out.dtype == np.float64
    assert est.laplacian_rows_.dtype == np.float64
    np.testing.assert_allclose(est.laplacian_rows_.sum(axis=1), 0.0, atol=1e-12)


def test_auto_rules_follow_the_matrix_shape():
    import sklearn_mc._air_net as air

    est = AIRNetImputer()
    # The papers' matrices (images, community matrices): the authors' schedule.
    for shape in [(96, 96), (240, 240), (150, 200)]:
        assert not est._early_stopping(shape)
        assert est._laplacian_interval(shape) == 1
    # Tables (a side below 64) and large matrices: held-out early stopping.
    for shape in [(442, 10), (36, 24), (20000, 20), (943, 1682)]:
        assert est._early_stopping(shape)
        assert est._laplacian_interval(shape) == air.AUTO_LAPLACIAN_INTERVAL
    fixed = AIRNetImputer(early_stopping=False, laplacian_interval=3)
    assert not fixed._early_stopping((943, 1682))
    assert fixed._laplacian_interval((96, 96)) == 3


def test_early_stopping_auto_follows_the_matrix_size(monkeypatch):
    import sklearn_mc._air_net as air

    X = _community_matrix(64, 64, 4)  # no side below 64: not a table
    square = np.where(np.random.RandomState(2).rand(64, 64) < 0.4, X, np.nan)
    params = {"learning_rate": 1e-2, "max_iter": 60, "random_state": 0}
    small = AIRNetImputer(**params).fit(square)  # below the size, not a table
    assert small.validation_loss_curve_ == []
    forced = AIRNetImputer(early_stopping=True, **params).fit(square)
    assert len(forced.validation_loss_curve_) == 60 // 10
    monkeypatch.setattr(air, "AUTO_EARLY_STOPPING_SIZE", 100)
    auto = AIRNetImputer(**params).fit(square)
    assert auto.validation_loss_curve_ == forced.validation_loss_curve_


def test_lazy_laplacian_steps(community):
    # laplacian_interval=3: the free matrices move at iterations 1, 4, 7, ...
    # only, and the factors' first step uses the exact regulariser gradient.
    _, X_missing = community
    params = {"early_stopping": False, "tol": 0.0, "random_state": 0}
    laps = [
        AIRNetImputer(laplacian_interval=3, max_iter=k, **params)
        .fit(X_missing)
        .laplacian_rows_
        for k in (1, 2, 3, 4)
    ]
    np.testing.assert_array_equal(laps[0], laps[1])
    np.testing.assert_array_equal(laps[0], laps[2])
    assert np.abs(laps[3] - laps[2]).max() > 1e-6
    one = AIRNetImputer(laplacian_interval=1, max_iter=1, **params).fit(X_missing)
    lazy = AIRNetImputer(laplacian_interval=3, max_iter=1, **params).fit(X_missing)
    for a, b in zip(one.factors_, lazy.factors_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)


def test_lazy_laplacian_fit_is_as_good(community):
    X, X_missing = community
    hidden = np.isnan(X_missing)
    common = {"learning_rate": 1e-2, "max_iter": 400, "random_state": 0}
    common["early_stopping"] = False  # compare the optimisation only
    lazy = AIRNetImputer(laplacian_interval=5, **common).fit_transform(X_missing)
    every = AIRNetImputer(laplacian_interval=1, **common).fit_transform(X_missing)
    assert rmse(X, lazy, hidden) < 1.5 * rmse(X, every, hidden) + 1e-3


def test_default_width_is_capped_on_large_matrices(community, monkeypatch):
    import sklearn_mc._air_net as air

    _, X_missing = community
    params = {"max_iter": 2, "random_state": 0}
    assert AIRNetImputer(**params).fit(X_missing).factors_[0].shape[0] == 24
    monkeypatch.setattr(air, "AUTO_EARLY_STOPPING_SIZE", 100)
    monkeypatch.setattr(air, "AUTO_LARGE_WIDTH", 5)
    assert AIRNetImputer(**params).fit(X_missing).factors_[0].shape[0] == 5
    # An explicit width is kept.
    est = AIRNetImputer(width=7, **params).fit(X_missing)
    assert est.factors_[0].shape[0] == 7


def test_early_stopping_ends_a_no_progress_fit(community):
    _, X_missing = community
    est = AIRNetImputer(
        early_stopping=True, learning_rate=1e-12, tol=0.0, max_iter=5000, random_state=0
    ).fit(X_missing)
    assert est.stop_reason_ == "early_stopping"
    assert est.n_iter_ <= 110


def test_tables_wait_longer_before_stopping(community):
    # early_stopping="auto" on a table: patience >= 0.5 / learning_rate
    # iterations (the held-out error can rise before it falls there).
    _, X_missing = community
    est = AIRNetImputer(random_state=0, max_iter=5000).fit(X_missing)
    assert est.stop_reason_ == "early_stopping"
    assert est.n_iter_ - est.best_iter_ >= 500
    short = AIRNetImputer(early_stopping=True, random_state=0, max_iter=5000)
    short.fit(X_missing)
    assert short.n_iter_ - short.best_iter_ <= 110
