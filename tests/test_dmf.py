"""Tests of DMFImputer: the two-branch model, its extensions and DMF-D."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from sklearn_mc import DMFImputer
from sklearn_mc._dmf_discrete import _Quantiser
from sklearn_mc.datasets import make_ratings
from sklearn_mc.model_selection import hide_entries

LEVELS = [1, 2, 3, 4, 5]


def small(**params):
    defaults = dict(
        hidden_layer_sizes=(32,),
        latent_dim=8,
        max_iter=30,
        learning_rate=3e-3,
        batch_size=256,
        device="cpu",
        random_state=0,
    )
    defaults.update(params)
    return DMFImputer(**defaults)


@pytest.fixture(scope="module")
def ratings():
    X, X_full = make_ratings(150, 80, density=0.25, random_state=0, return_truth=True)
    X_train, hidden = hide_entries(X, 0.2, random_state=1)
    return X_train, hidden, X_full


@pytest.fixture(scope="module")
def fitted(ratings):
    X_train, _, _ = ratings
    return small().fit(X_train)


def rmse(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_beats_item_means_on_ratings(ratings, fitted):
    X_train, hidden, X_full = ratings
    out = fitted.transform(X_train)
    item_means = np.broadcast_to(np.nanmean(X_train, axis=0), X_train.shape)
    assert rmse(out[hidden], X_full[hidden]) < rmse(item_means[hidden], X_full[hidden])
    assert fitted.scaling_ == "global"
    assert fitted.row_factors_.shape == (150, 8)
    assert fitted.column_factors_.shape == (80, 8)
    assert 1 <= fitted.n_iter_ <= 30
    assert len(fitted.loss_curve_) == fitted.n_iter_
    assert len(fitted.validation_loss_curve_) == fitted.n_iter_
    # the cosine's range [-1, 1] maps onto the observed rating range
    assert out.min() >= 1 - 1e-9 and out.max() <= 5 + 1e-9


def test_col_factors_is_a_deprecated_alias(fitted):
    with pytest.warns(FutureWarning, match="renamed column_factors_"):
        old = fitted.col_factors_
    assert old is fitted.column_factors_
    assert not hasattr(DMFImputer(), "col_factors_")
    # a model pickled before the rename stored the old name
    state = fitted.__getstate__()
    state["col_factors_"] = state.pop("column_factors_")
    restored = DMFImputer.__new__(DMFImputer)
    restored.__setstate__(state)
    np.testing.assert_array_equal(restored.column_factors_, fitted.column_factors_)
    assert "col_factors_" not in vars(restored)


def test_fit_transform_equals_transform(ratings, fitted):
    X_train, _, _ = ratings
    np.testing.assert_allclose(
        small().fit_transform(X_train), fitted.transform(X_train), atol=1e-10
    )


def test_discrete_outputs_exactly_on_levels(ratings):
    X_train, hidden, X_full = ratings
    est = small(levels=LEVELS)
    out = est.fit_transform(X_train)
    missing = np.isnan(X_train)
    assert set(np.unique(out[missing])) <= set(LEVELS)
    np.testing.assert_array_equal(out[~missing], X_train[~missing])
    assert est.boundaries_.shape == (4,)
    assert np.all(np.diff(est.boundaries_) > 0)
    assert np.all((est.boundaries_ > 1) & (est.boundaries_ < 5))
    np.testing.assert_array_equal(est.levels_, LEVELS)
    # discrete predictions still carry information
    item_means = np.round(np.broadcast_to(np.nanmean(X_train, 0), X_train.shape))
    assert rmse(out[hidden], X_full[hidden]) < rmse(item_means[hidden], X_full[hidden])


def test_uneven_levels_and_data_inside_them():
    X = make_ratings(60, 30, density=0.4, levels=(0, 1, 5), random_state=2)
    # the data never use the top level; it must still be reachable
    X[X == 5] = 1
    est = small(levels=[0, 1, 5], max_iter=5)
    out = est.fit_transform(X)
    assert set(np.unique(out[np.isnan(X)])) <= {0.0, 1.0, 5.0}
    assert est._scale_shift[0] == 2.5 and est._scale_factor[0] == 2.5


@pytest.mark.parametrize(
    "levels, match",
    [
        ([3, 2, 1], "strictly increasing"),
        ([1, 2, 2, 3], "strictly increasing"),
        ([4], "at least two"),
        ([], "at least two"),
        ([1, np.nan, 3], "finite"),
        ([1, np.inf], "finite"),
        ([[1, 2], [3, 4]], "1-D"),
        (["a", "b"], "numbers"),
    ],
)
def test_bad_levels_raise(levels, match):
    X = make_ratings(20, 10, density=0.5, random_state=0)
    with pytest.raises(ValueError, match=match):
        small(levels=levels, max_iter=1).fit(X)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(hidden_layer_sizes=(8, 0)), "hidden_layer_sizes"),
        (dict(hidden_layer_sizes=(8.5,)), "hidden_layer_sizes"),
        (dict(slope_range=(10.0, 1.0)), "slope_range"),
        (dict(slope_range=(0.0, 1.0)), "slope_range"),
        (dict(slope_range=(1.0,)), "slope_range"),
        (dict(levels=LEVELS, scaling="column"), "scaling='global'"),
        (dict(latent_dim=0), "latent_dim"),
        (dict(activation="gelu"), "activation"),
    ],
)
def test_bad_parameters_raise(params, match):
    X = make_ratings(20, 10, density=0.5, random_state=0)
    with pytest.raises(ValueError, match=match):
        small(max_iter=1, **params).fit(X)


def test_complete_new_columns_and_crossing_match_training_ones(ratings):
    # Training rows and columns passed as "new" must get the same predictions
    # as inside the training matrix: the extension uses the same branches.
    # (without the blend toward the training columns' means, which new
    # columns do not get)
    X_train, _, _ = ratings
    fitted = small(mean_shrinkage=None).fit(X_train)
    full = fitted.transform(X_train)
    res = fitted.complete(X_train[:7], X_train[:, :5], X_new_both=X_train[:7, :5])
    np.testing.assert_allclose(res.new_rows, full[:7], atol=1e-10)
    np.testing.assert_allclose(res.new_cols, full[:, :5], atol=1e-10)
    np.testing.assert_allclose(res.new_both, full[:7, :5], atol=1e-10)
    only_cols = fitted.complete(X_new_cols=X_train[:, :5])
    assert only_cols.new_rows is None and only_cols.new_both is None
    np.testing.assert_array_equal(only_cols.new_cols, res.new_cols)


def test_complete_unseen_columns_beats_user_means(ratings):
    # Area III: columns withheld from training entirely.
    X_train, _, X_full = ratings
    est = small().fit(X_train[:, 10:])
    new_cols, hidden = hide_entries(X_train[:, :10], 0.3, random_state=3)
    out = est.complete(X_new_cols=new_cols).new_cols
    assert out.shape == (150, 10)
    seen = ~np.isnan(new_cols)
    np.testing.assert_array_equal(out[seen], new_cols[seen])
    user_means = np.broadcast_to(np.nanmean(X_train[:, 10:], 1)[:, None], out.shape)
    truth = X_full[:, :10]
    assert rmse(out[hidden], truth[hidden]) < rmse(user_means[hidden], truth[hidden])


def test_complete_crossing_keeps_observed_and_levels(ratings):
    X_train, _, _ = ratings
    est = small(levels=LEVELS, max_iter=5).fit(X_train[20:, 10:])
    X_both = X_train[:20, :10]
    res = est.complete(X_train[:20, 10:], X_train[20:, :10], X_new_both=X_both)
    assert res.new_both.shape == (20, 10)
    seen = ~np.isnan(X_both)
    np.testing.assert_array_equal(res.new_both[seen], X_both[seen])
    for block in res:
        assert set(np.unique(block)) <= set(LEVELS)


def test_complete_validates_inputs(fitted, ratings):
    X_train, _, _ = ratings
    with pytest.raises(ValueError, match="training rows"):
        fitted.complete(X_new_cols=X_train[:-1, :3])
    with pytest.raises(ValueError, match="needs both"):
        fitted.complete(X_new_cols=X_train[:, :3], X_new_both=np.ones((2, 3)))
    with pytest.raises(ValueError, match="expected"):
        fitted.complete(X_train[:2], X_train[:, :3], X_new_both=np.ones((3, 2)))
    with pytest.raises(ValueError, match="features"):
        fitted.complete(X_new_rows=X_train[:2, :-1])
    assert fitted.complete() == (None, None, None)


def test_complete_with_missing_values_marker(ratings):
    X_train, _, _ = ratings
    marked = np.where(np.isnan(X_train), 0.0, X_train)
    a = small(max_iter=3).fit(X_train)
    b = small(max_iter=3, missing_values=0.0).fit(marked)
    np.testing.assert_allclose(
        a.complete(X_new_cols=X_train[:, :4]).new_cols,
        b.complete(X_new_cols=marked[:, :4]).new_cols,
    )


def test_column_scaling_for_mixed_units():
    rng = np.random.RandomState(0)
    base = make_ratings(80, 6, density=0.9, random_state=0)
    base = np.where(np.isnan(base), 3.0, base)
    X = base * np.array([1, 10, 100, 1000, 0.01, 0.1])
    X[rng.random_sample(X.shape) < 0.2] = np.nan
    est = small(max_iter=10)
    out = est.fit_transform(X)
    assert est.scaling_ == "column"
    lo, hi = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
    assert np.all((out >= lo - 1e-9) & (out <= hi + 1e-9))
    # a new column in its own units is scaled by its own observed range
    new = est.complete(X_new_cols=X[:, 3:4] * 5).new_cols
    assert new.min() >= 5 * lo[3] - 1e-9 and new.max() <= 5 * hi[3] + 1e-9
    assert small(max_iter=2, scaling="global").fit(X).scaling_ == "global"


def test_paper_setting_without_leave_out(ratings):
    X_train, hidden, X_full = ratings
    out = small(leave_target_out=False).fit_transform(X_train)
    item_means = np.broadcast_to(np.nanmean(X_train, axis=0), X_train.shape)
    assert rmse(out[hidden], X_full[hidden]) < rmse(item_means[hidden], X_full[hidden])


def test_no_early_stopping_runs_max_iter(ratings):
    X_train, _, _ = ratings
    est = small(early_stopping=False, max_iter=4, tol=0.0).fit(X_train)
    assert est.n_iter_ == 4 and est.validation_loss_curve_ == []


def test_full_batch_and_deeper_branches(ratings):
    X_train, _, _ = ratings
    est = small(batch_size=None, hidden_layer_sizes=(16, 8), max_iter=3)
    assert np.isfinite(est.fit_transform(X_train)).all()
    est = small(hidden_layer_sizes=(), activation="tanh", max_iter=3)
    assert np.isfinite(est.fit_transform(X_train)).all()


def test_pickled_model_completes(fitted, ratings):
    X_train, _, _ = ratings
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(
        loaded.complete(X_new_cols=X_train[:, :3]).new_cols,
        fitted.complete(X_new_cols=X_train[:, :3]).new_cols,
    )


def test_verbose_shows_progress(ratings, capsys):
    X_train, _, _ = ratings
    small(verbose=2, max_iter=2, levels=LEVELS).fit(X_train)
    assert "DMFImputer" in capsys.readouterr().err


def test_smooth_quantiser_tends_to_hard_one():
    levels = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=torch.float64)
    q = _Quantiser(levels.numpy(), np.array([4.0, 4000.0]), 10, torch.device("cpu"))
    x = torch.linspace(-1, 1, 401, dtype=torch.float64)
    away = torch.abs(x - torch.round(x * 2) / 2 - 0.25) > 0.01  # off boundaries
    away &= torch.abs(x - torch.round(x * 2) / 2 + 0.25) > 0.01
    hard = q.hard(x)
    # uniform boundaries: rounding to the nearest level
    expected = torch.round(x * 2) / 2
    np.testing.assert_array_equal(hard[away].numpy(), expected[away].numpy())
    q.anneal(0)
    gap_small = float(torch.max(torch.abs(q.smooth(x) - hard)).detach())
    q.anneal(10)
    gap_large = float(torch.max(torch.abs(q.smooth(x) - hard)[away]).detach())
    assert gap_large < 1e-3 < gap_small
    # the smooth quantiser passes gradients to the input and the boundaries
    x = x.clone().requires_grad_(True)
    q.anneal(0)
    q.smooth(x).sum().backward()
    assert float(x.grad.abs().sum()) > 0 and float(q.boundaries.grad.abs().sum()) > 0


def _sparse_of(X):
    import scipy.sparse as sp

    rows, cols = np.nonzero(~np.isnan(X))
    return sp.csr_array((X[rows, cols], (rows, cols)), shape=X.shape)


def test_sparse_input_gives_the_dense_completion(ratings):
    X_train, _, _ = ratings
    dense = small(max_iter=5).fit_transform(X_train)
    est = small(max_iter=5)
    sparse = est.fit_transform(_sparse_of(X_train))
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=1e-8)
    rows, cols = np.nonzero(np.isnan(X_train))
    np.testing.assert_allclose(
        est.predict_entries(rows[:50], cols[:50]),
        dense[rows[:50], cols[:50]],
        atol=1e-8,
    )


def _gathered_per_entry(n_rows, monkeypatch):
    """Vector entries gathered by one epoch of DMF, per training entry."""
    from sklearn_mc import _dmf_branch

    counter = [0]
    original = _dmf_branch._Sparse.gather

    def counting(self, select):
        out = original(self, select)
        counter[0] += int(out[0].numel())
        return out

    monkeypatch.setattr(_dmf_branch._Sparse, "gather", counting)
    rng = np.random.RandomState(0)
    X = rng.randn(n_rows, 2) @ rng.randn(2, 6)
    X[rng.rand(*X.shape) < 0.2] = np.nan
    est = small(
        hidden_layer_sizes=(4,),
        latent_dim=2,
        batch_size=16,
        max_iter=1,
        early_stopping=False,
    ).fit(X)
    return counter[0] / np.isfinite(X).sum(), est


def test_epoch_cost_is_linear_in_rows(monkeypatch):
    # D6: each mini-batch used to re-encode every column it touched from all
    # of the column's entries, so an epoch cost O(rows²) on a tall table.
    small_cost, _ = _gathered_per_entry(200, monkeypatch)
    large_cost, est = _gathered_per_entry(1600, monkeypatch)
    assert est._cache_intervals[0] == 0 and est._cache_intervals[1] > 0
    assert large_cost < 2 * small_cost


def test_cached_columns_still_learn(monkeypatch):
    from sklearn_mc import _dmf_branch

    monkeypatch.setattr(_dmf_branch, "_PROJECT_FACTOR", 10**9)  # the cache, not R
    rng = np.random.RandomState(0)
    X = rng.randn(600, 3) @ rng.randn(3, 8)
    X_missing = np.where(rng.rand(*X.shape) < 0.25, np.nan, X)
    hidden = np.isnan(X_missing)
    est = small(batch_size=32, max_iter=10, scaling="column")
    out = est.fit_transform(X_missing)
    assert est._cache_intervals[1] > 0
    means = np.broadcast_to(np.nanmean(X_missing, axis=0), X.shape)
    assert rmse(out[hidden], X[hidden]) < 0.5 * rmse(means[hidden], X[hidden])


def test_full_batch_memory_is_chunked(monkeypatch):
    # Full batch goes through the heads in chunks under checkpointing, with
    # the same gradients as one pass.
    from sklearn_mc import _dmf_side

    X = make_ratings(60, 30, density=0.4, random_state=0)
    one = small(batch_size=None, max_iter=3, early_stopping=False).fit_transform(X)
    monkeypatch.setattr(_dmf_side, "_ENTRY_CHUNK", 64)
    chunked = small(batch_size=None, max_iter=3, early_stopping=False)
    np.testing.assert_allclose(chunked.fit_transform(X), one, atol=1e-10)


def test_delayed_gradient_and_all_vectors_without_copies():
    # Issue 14 item 7: the cached side's delayed gradient reaches the weight
    # without a weight-sized product, and the whole-side sparse matrices are
    # built from the grouped entries as they are (no gather, no sort).
    from sklearn_mc._dmf_branch import _csr, _Sparse
    from sklearn_mc._dmf_side import _DelayedGradient

    w = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(6, 3, dtype=torch.float64)
    term = _DelayedGradient.apply(w, g)
    assert float(term.detach()) == 0.0
    (2.0 * term + (w**2).sum()).backward()
    np.testing.assert_array_equal(w.grad.numpy(), (2.0 * g + 2.0 * w).detach())

    rng = np.random.RandomState(0)
    dense = rng.randn(9, 5) * (rng.rand(9, 5) < 0.6)
    r, c = (torch.as_tensor(a) for a in np.nonzero(dense))
    v = torch.as_tensor(dense[np.nonzero(dense)])
    by_row, by_col = _Sparse(r, c, v, 9), _Sparse(c, r, v, 5)
    for got, want in zip(
        by_row.all_vectors(), by_row.gather(torch.arange(9)), strict=True
    ):
        assert torch.equal(torch.as_tensor(got), torch.as_tensor(want))
    S, St = _csr(by_row, 9, 5), _csr(by_col, 5, 9)
    assert S.values().data_ptr() == by_row.values.data_ptr()
    assert St.col_indices().data_ptr() == by_col.indices.data_ptr()
    np.testing.assert_array_equal(S.to_dense().numpy(), dense)
    np.testing.assert_array_equal(St.to_dense().numpy(), dense.T)


def test_auto_width_is_capped_by_the_short_side():
    # Issue 14 item 7: at the old fixed width 256 the column branch of a
    # 100,000 x 50 table held 100,000 x 256 first-layer weights (62 x X).
    X = make_ratings(40, 12, density=0.5, random_state=0)
    est = DMFImputer(latent_dim=4, max_iter=2, random_state=0).fit(X)
    assert est.hidden_layer_sizes_ == (12,)
    assert est.row_branch_.weight.shape == (12, 12)
    est = DMFImputer(latent_dim=16, max_iter=2, random_state=0).fit(X)
    assert est.hidden_layer_sizes_ == (16,)
    assert DMFImputer()._hidden_sizes(None, 6040, 3706, 900_000) == [256]
    assert DMFImputer()._hidden_sizes(None, 100_000, 50, 4_000_000) == [64]
    assert DMFImputer()._hidden_sizes([7, 3], 70_000, 10_000, 10**8) == [7, 3]


def test_tall_table_projects_the_long_inputs(monkeypatch):
    from sklearn_mc import _dmf_branch

    rng = np.random.RandomState(0)
    X = rng.randn(600, 3) @ rng.randn(3, 6)
    X_missing = np.where(rng.rand(*X.shape) < 0.25, np.nan, X)
    hidden = np.isnan(X_missing)
    est = small(batch_size=32, max_iter=10)
    out = est.fit_transform(X_missing)
    # the column branch sees each 600-vector through a fixed projection to
    # 32 dimensions: 32 x 32 learned weights, not 600 x 32
    assert est.col_branch_.projection.shape == (600, 32)
    assert est.col_branch_.weight.shape == (32, 32)
    assert est.row_branch_.projection is None
    monkeypatch.setattr(_dmf_branch, "_PROJECT_FACTOR", 10**9)
    full = small(batch_size=32, max_iter=10).fit_transform(X_missing)
    means = np.broadcast_to(np.nanmean(X_missing, axis=0), X.shape)
    error = rmse(out[hidden], X[hidden])
    assert error < 0.75 * rmse(means[hidden], X[hidden])
    assert error < 1.1 * rmse(full[hidden], X[hidden])
    new = est.complete(X_new_cols=X_missing[:, :2]).new_cols
    assert np.isfinite(new).all() and new.shape == (600, 2)
    kept = ~hidden[:, :2]
    np.testing.assert_array_equal(new[kept], X_missing[:, :2][kept])


def test_float32_training_above_the_size_threshold(ratings, monkeypatch):
    from sklearn_mc import _dmf

    X_train, _, _ = ratings
    monkeypatch.setattr(_dmf, "_FLOAT32_ENTRIES", 100)
    est = small(max_iter=3)
    out = est.fit_transform(X_train)
    assert est.row_branch_.weight.dtype == torch.float32
    assert out.dtype == np.float64 and est.row_factors_.dtype == np.float64
    assert est.transform(X_train[:5]).dtype == np.float64
    observed = ~np.isnan(X_train)
    np.testing.assert_array_equal(out[observed], X_train[observed])
    assert np.isfinite(out).all()


def test_auto_batch_bounds_the_steps_per_epoch(monkeypatch):
    from sklearn_mc import _dmf

    monkeypatch.setattr(_dmf, "_MIN_BATCH", 8)
    monkeypatch.setattr(_dmf, "_MAX_STEPS", 4)
    X = make_ratings(40, 20, density=0.5, random_state=0)
    est = small(batch_size="auto", max_iter=2, early_stopping=False).fit(X)
    assert est.batch_size_ == int(np.ceil(np.isfinite(X).sum() / 4))
    assert small(batch_size=16, max_iter=1).fit(X).batch_size_ == 16


def _with_noise_column(seed=0):
    """A rank-2 table in mixed units plus one column of pure noise (last)."""
    rng = np.random.RandomState(seed)
    X = rng.randn(200, 2) @ rng.randn(2, 7) * np.array([1, 10, 100, 1, 5, 50, 2])
    X = np.column_stack([X, 1000 * rng.randn(200)])
    X_missing = X.copy()
    X_missing[rng.rand(*X.shape) < 0.3] = np.nan
    return X, X_missing


def test_noise_column_is_shrunk_to_its_mean():
    # Issue 15: no column may be completed worse than by its mean. The
    # network cannot predict the noise column; the held-out blend sets it to
    # the mean (and says so), and keeps the structured columns.
    # The held-out least-squares weight of a noise column is about 0, of
    # either sign; in this draw it is clearly negative (-0.8), so it clips to
    # 0 and the warning is due. Enough held-out entries per column (about
    # 40) to outweigh the prior toward 1.
    X, X_missing = _with_noise_column(4)
    est = small(max_iter=25, validation_fraction=0.3)
    with pytest.warns(UserWarning, match=r"1 column\(s\) \(x7\)"):
        out = est.fit_transform(X_missing)
    assert est.scaling_ == "column"
    w = est.blend_weights_
    assert w.shape == (8,) and w[7] == 0
    assert np.all(w[:7] > 0.8)
    missing = np.isnan(X_missing)
    noise_mean = np.nanmean(X_missing[:, 7])
    raw = small(
        max_iter=25, validation_fraction=0.3, mean_shrinkage=None
    ).fit_transform(X_missing)
    err = lambda o: rmse(o[missing[:, 7], 7], X[missing[:, 7], 7])  # noqa: E731
    assert err(out) < err(raw)
    np.testing.assert_allclose(
        out[missing[:, 7], 7], noise_mean + w[7] * (raw[missing[:, 7], 7] - noise_mean)
    )


def test_ratings_share_one_weight(ratings, fitted):
    # a rating matrix (global scaling) has a few held-out entries per item:
    # one weight for all columns, mostly the network where it beats the
    # item means
    w = fitted.blend_weights_
    assert np.all(w == w[0]) and 0.5 < w[0] <= 1


def test_blend_is_the_same_in_every_output_path():
    # dense and sparse fits, transform, predict_entries and complete's new
    # rows all complete column j as mean_j + w_j (dmf_j - mean_j)
    X, X_missing = _with_noise_column(1)
    X_missing = X_missing[:, :7]
    est = small(max_iter=5, mean_shrinkage=0.5)
    dense = est.fit_transform(X_missing)
    np.testing.assert_array_equal(est.blend_weights_, np.full(7, 0.5))
    assert np.isfinite(dense).all()
    sparse = small(max_iter=5, mean_shrinkage=0.5).fit_transform(_sparse_of(X_missing))
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=1e-8)
    rows, cols = np.nonzero(np.isnan(X_missing))
    np.testing.assert_allclose(
        est.predict_entries(rows, cols), dense[rows, cols], rtol=0, atol=1e-8
    )
    np.testing.assert_allclose(
        est.complete(X_missing[:9]).new_rows, dense[:9], rtol=0, atol=1e-8
    )
    # against the unblended model: half-way to the observed means
    raw = small(max_iter=5, mean_shrinkage=None).fit_transform(X_missing)
    mean = np.nanmean(X_missing, axis=0)[cols]
    np.testing.assert_allclose(
        dense[rows, cols], mean + 0.5 * (raw[rows, cols] - mean), atol=1e-8
    )
    # new columns have no mean in the model: they are not blended
    off = small(max_iter=5, mean_shrinkage=None).fit(X_missing)
    np.testing.assert_allclose(
        est.complete(X_new_cols=X_missing[:, :2]).new_cols,
        off.complete(X_new_cols=X_missing[:, :2]).new_cols,
        atol=1e-8,
    )


def test_discrete_variant_blends_then_snaps(ratings):
    X_train, _, _ = ratings
    est = small(levels=LEVELS, max_iter=5, mean_shrinkage=1.0)
    out = est.fit_transform(X_train)
    missing = np.isnan(X_train)
    assert set(np.unique(out[missing])) <= set(LEVELS)
    # w = 0: every missing entry is its column's mean, quantised by the
    # learned boundaries
    means = np.broadcast_to(np.nanmean(X_train, axis=0), X_train.shape)
    levels = np.asarray(LEVELS, dtype=float)
    np.testing.assert_array_equal(
        out[missing], levels[np.searchsorted(est.boundaries_, means[missing])]
    )


def test_no_held_out_entries_no_blend(ratings):
    X_train, _, _ = ratings
    est = small(early_stopping=False, max_iter=3).fit(X_train)
    np.testing.assert_array_equal(est.blend_weights_, 1.0)


def test_dense_fit_takes_compact_entries_and_releases_the_hand_over(monkeypatch):
    # int32 indices as the base keeps them (no int64 copy in the layouts),
    # and the scaled values it hands over are released by the fit
    X = make_ratings(60, 30, density=0.4, random_state=0)
    handed = []
    fit_entries = DMFImputer._fit_entries

    def spy(self, entries):
        handed.append(entries)
        return fit_entries(self, entries)

    monkeypatch.setattr(DMFImputer, "_fit_entries", spy)
    est = small(max_iter=1).fit(X)
    assert est._train_entries.rows.dtype == np.int32
    assert handed[0].rows is est._train_entries.rows
    assert handed[0].values is None  # the scaled copy: released
    assert est._train_entries.values is not None  # the kept entries: not


def test_grouping_by_column_is_the_sorted_transpose():
    from sklearn_mc._dmf_branch import _by_column, _Sparse

    mask = torch.rand(50, 7, generator=torch.Generator().manual_seed(0)) < 0.6
    rows, cols = mask.nonzero(as_tuple=True)
    vals = torch.randn(rows.numel(), generator=torch.Generator().manual_seed(1))
    for dtype in (torch.int32, torch.int64):
        r, c = rows.to(dtype), cols.to(dtype)
        sorted_ = _Sparse(c, r, vals, 7)
        counted = _by_column(_Sparse(r, c, vals, 50), 50, 7)
        for a, b in zip(
            (sorted_.indptr, sorted_.indices, sorted_.values),
            (counted.indptr, counted.indices, counted.values),
            strict=True,
        ):
            assert torch.equal(a.to(b.dtype), b)


def test_transform_scales_and_masks_in_chunks(monkeypatch):
    # no dense scaled (nor zero-filled) copy of the whole input
    from sklearn_mc import _dmf

    monkeypatch.setattr(_dmf, "_CHUNK", 16)
    X = make_ratings(50, 12, density=0.5, random_state=0)
    est = small(max_iter=1).fit(X)
    before = est.transform(X)
    seen = []
    scale = DMFImputer._scale

    def spy(self, A):
        seen.append(A.shape[0])
        return scale(self, A)

    monkeypatch.setattr(DMFImputer, "_scale", spy)
    np.testing.assert_array_equal(est.transform(X), before)
    assert seen and max(seen) <= 16


def test_step_halves_on_held_out_plateau_then_stops():
    from types import SimpleNamespace

    from sklearn_mc._callbacks import HalveOnPlateau

    weight = torch.zeros(1, requires_grad=True)
    stopped = []
    loop = SimpleNamespace(
        lr=0.1,
        optimizer=torch.optim.Adam([weight], lr=0.1),
        stop=stopped.append,
    )
    history = SimpleNamespace(validation_loss=[])
    cb = HalveOnPlateau(tol=1e-4, patience=2, halvings=2)
    cb.on_train_begin(loop, history)
    lrs = []
    # a gain, then plateaus: two checks without a gain halve the step, a gain
    # resets the count, and the plateau after the last halving stops
    for value in [1.0, 1.0, 1.0, 0.5, 0.6, 0.6, 0.7, 0.5, 0.5]:
        cb.on_epoch_begin(loop, history)
        lrs.append(loop.optimizer.param_groups[0]["lr"])
        history.validation_loss.append(value)
        cb.on_epoch_end(loop, history)
        cb.on_epoch_end(loop, history)  # no new check: nothing changes
    assert lrs == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025]
    assert stopped == ["early_stopping"]
    # a divergence rewind rebuilds the optimiser at loop.lr: the halvings stay
    loop.optimizer = torch.optim.Adam([weight], lr=loop.lr / 2)
    cb.on_epoch_begin(loop, history)
    assert loop.optimizer.param_groups[0]["lr"] == 0.1 * 0.25


def test_step_halving_only_with_many_held_out_entries(monkeypatch):
    # on a small table the held-out error's swings are the hold-out's own
    # noise: the halving (and its stop) is for hold-outs of many entries
    from sklearn_mc import _dmf

    made = []

    class Recorder(_dmf.HalveOnPlateau):
        def __init__(self, **kwargs):
            made.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(_dmf, "HalveOnPlateau", Recorder)
    rng = np.random.RandomState(0)
    X = rng.standard_normal((40, 6))
    X[rng.rand(*X.shape) < 0.2] = np.nan
    DMFImputer(max_iter=3, random_state=0).fit(X)
    assert made == []
    monkeypatch.setattr(_dmf, "_LR_MIN_HELD_OUT", 1)
    DMFImputer(max_iter=3, random_state=0).fit(X)
    assert made and made[0]["halvings"] == _dmf._LR_HALVINGS
