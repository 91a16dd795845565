import numpy as np
import pytest

from sklearn_mc import SVDImputer
from sklearn_mc.datasets import make_low_rank, make_mask
from sklearn_mc.metrics import relative_error

# Seed 001's matrix and its rank-2 truncated-SVD loss (Eckart-Young).
A = np.array(
    [[0.3374, 0.6005, 0.1735], [3.3359, 0.0492, 1.8374], [2.9407, 0.5301, 2.2620]]
)
SEED_001_LOSS = 0.12191088497638702


@pytest.mark.parametrize("solver", ["als", "svd"])
def test_seed_001_truncated_svd_loss(solver):
    est = SVDImputer(
        rank=2, center=False, scaling="none", solver=solver, random_state=0
    ).fit(A)
    # Project A on the learned right subspace: the best rank-2 approximation.
    Q = np.linalg.qr(est.components_.T)[0]
    loss = float(((A - A @ Q @ Q.T) ** 2).sum())
    assert abs(loss - SEED_001_LOSS) < 1e-3
    np.testing.assert_allclose(est.singular_values_, [5.3339, 0.6959], atol=1e-3)


def _low_rank_problem(n=120, m=80, rank=3, rate=0.5, seed=0):
    X = make_low_rank(n, m, rank, random_state=seed)
    hidden = make_mask(X.shape, "random", missing_rate=1 - rate, random_state=seed + 1)
    return X, np.where(hidden, np.nan, X), hidden


def test_als_recovers_exact_low_rank():
    X, X_missing, hidden = _low_rank_problem()
    out = SVDImputer(rank=3, random_state=0).fit_transform(X_missing)
    assert relative_error(X, out, hidden) < 1e-6


def test_auto_rank_finds_true_rank():
    X, X_missing, hidden = _low_rank_problem(rank=4)
    est = SVDImputer(random_state=0)
    out = est.fit_transform(X_missing)
    assert est.rank_ == 4
    assert relative_error(X, out, hidden) < 1e-6


def test_svd_solver_converges_on_easy_problem():
    X, X_missing, hidden = _low_rank_problem(rate=0.7)
    est = SVDImputer(rank=3, solver="svd", max_iter=300, random_state=0)
    out = est.fit_transform(X_missing)
    assert relative_error(X, out, hidden) < 1e-3


@pytest.mark.parametrize("solver", ["als", "svd"])
def test_shrinkage_soft_thresholds_singular_values(solver):
    X, X_missing, _ = _low_rank_problem()
    plain = SVDImputer(rank=3, solver=solver, random_state=0, max_iter=200)
    soft = SVDImputer(
        rank=3, solver=solver, shrinkage=50.0, random_state=0, max_iter=200
    )
    s_plain = plain.fit(X_missing).singular_values_
    s_soft = soft.fit(X_missing).singular_values_
    assert (s_soft < s_plain).all()


def test_soft_impute_fixed_point_on_full_matrix():
    # With every entry observed, SoftImpute's solution is the SVD of X with
    # singular values shrunk by the threshold: check ALS reaches it.
    X = make_low_rank(30, 20, 3, random_state=0)
    s = np.linalg.svd(X, compute_uv=False)
    lam = 0.5 * s[2]
    est = SVDImputer(
        rank=3, shrinkage=lam, center=False, scaling="none", tol=1e-12, max_iter=2000
    )
    est.fit(X)
    np.testing.assert_allclose(est.singular_values_, s[:3] - lam, rtol=1e-5)


def test_transform_folds_in_new_rows():
    X, X_missing, hidden = _low_rank_problem(n=200)
    est = SVDImputer(rank=3, random_state=0).fit(X_missing[:150])
    out = est.transform(X_missing[150:])
    assert relative_error(X[150:], out, hidden[150:]) < 1e-6


def test_row_with_no_observation_gets_offsets():
    X, X_missing, _ = _low_rank_problem()
    est = SVDImputer(rank=3, scaling="none", random_state=0).fit(X_missing)
    out = est.transform(np.full((1, X.shape[1]), np.nan))
    np.testing.assert_allclose(out[0], est.offsets_)
    # In standardised units the offsets are mapped back to the data's.
    est = SVDImputer(rank=3, random_state=0).fit(X_missing)
    out = est.transform(np.full((1, X.shape[1]), np.nan))
    mean, std = np.nanmean(X_missing, 0), np.nanstd(X_missing, 0)
    np.testing.assert_allclose(out[0], mean + std * est.offsets_)


def test_rank_larger_than_matrix_warns_and_clips():
    X, X_missing, _ = _low_rank_problem(n=10, m=4)
    with pytest.warns(UserWarning, match="exceeds"):
        est = SVDImputer(rank=7, random_state=0).fit(X_missing)
    assert est.rank_ == 4


def test_invalid_parameters_raise():
    X, X_missing, _ = _low_rank_problem(n=10, m=4)
    for params in ({"rank": 0}, {"shrinkage": -1.0}, {"solver": "qr"}, {"rank": "big"}):
        with pytest.raises(ValueError):
            SVDImputer(**params).fit(X_missing)


def test_noisy_overfit_rank_does_not_extrapolate_into_a_patch():
    # A rank far above the signal's, on noisy data with a missing patch: the
    # noise ridge keeps the patch's values on the data's scale. Without it
    # (the plain hard-rank ALS) this fit filled the patch with values 4x the
    # largest observed one and an RMSE 5x that of column means.
    rng = np.random.RandomState(0)
    X = make_low_rank(80, 60, 3, random_state=0)
    X_noisy = X + 0.5 * X.std() * rng.randn(*X.shape)
    hidden = make_mask(X.shape, "patch", random_state=0)
    X_missing = np.where(hidden, np.nan, X_noisy)
    est = SVDImputer(rank=40, random_state=0)
    out = est.fit_transform(X_missing)
    assert est.fold_in_ridge_ > 0
    assert np.abs(out).max() <= 1.5 * np.nanmax(np.abs(X_missing))
    error = np.sqrt(((out - X)[hidden] ** 2).mean())
    means = np.sqrt(((np.nanmean(X_missing, 0) - X)[hidden] ** 2).mean())
    assert error < 1.5 * means


def test_exact_low_rank_data_gets_no_noise_ridge():
    X, X_missing, hidden = _low_rank_problem()
    est = SVDImputer(rank=3, random_state=0).fit(X_missing)
    assert est.fold_in_ridge_ < 1e-6
    assert relative_error(X, est.transform(X_missing), hidden) < 1e-6


def test_underdetermined_rank_warns():
    X = make_low_rank(40, 30, 3, random_state=0)
    hidden = make_mask(X.shape, "random", missing_rate=0.9, random_state=0)
    X_missing = np.where(hidden, np.nan, X)
    for method in ("fit", "fit_transform"):
        with pytest.warns(UserWarning, match="degrees of freedom") as record:
            getattr(SVDImputer(rank=3, random_state=0), method)(X_missing)
        # Attributed to the caller's line, not to a frame inside the libraries.
        assert record[0].filename == __file__


def test_auto_rank_looks_past_a_bump_in_the_held_out_error():
    # Rows and columns in ten groups (rank 10, singular values spread over two
    # decades), 80 % missing. The held-out error is worse at rank 6 than at
    # rank 4; a search that stopped at the first bump kept rank 4 (relative
    # error 0.49; rank 9 gives 0.28).
    rng = np.random.RandomState(0)
    rows, cols = rng.randint(10, size=150), rng.randint(10, size=200)
    X = rng.randn(10, 10)[rows][:, cols]
    hidden = make_mask(X.shape, "random", missing_rate=0.8, random_state=1)
    est = SVDImputer(scaling="none", random_state=0)
    out = est.fit_transform(np.where(hidden, np.nan, X))
    assert est.rank_ >= 8
    assert relative_error(X, out, hidden) < 0.35


def test_standard_scaling_helps_tables_in_mixed_units():
    # Wine's columns range from ~0.1 (hue) to ~750 (proline): fitted in raw
    # units the large columns dominate and the others are filled worse than
    # by their means.
    from sklearn.datasets import load_wine

    X = load_wine().data
    hidden = np.random.RandomState(0).rand(*X.shape) < 0.3
    X_missing = np.where(hidden, np.nan, X)
    errors = {}
    for scaling in ("none", "standard"):
        out = SVDImputer(scaling=scaling, random_state=0).fit_transform(X_missing)
        errors[scaling] = np.sqrt((((out - X) / X.std(0))[hidden] ** 2).mean())
    assert errors["standard"] < 1.0 < errors["none"]
