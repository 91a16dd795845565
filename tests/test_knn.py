import numpy as np
import pytest
import torch
from sklearn.impute import KNNImputer as SklearnKNNImputer

from sklearn_mc import KNNImputer


def _random_problem(seed, n=40, p=8, rate=0.3, scale=1.0):
    rng = np.random.RandomState(seed)
    X = scale * rng.standard_normal((n, p))
    X[rng.rand(n, p) < rate] = np.nan
    Y = scale * rng.standard_normal((15, p))
    Y[rng.rand(15, p) < rate] = np.nan
    return X, Y


def _brute_force(X_fit, X, k, weights):
    """Entry-by-entry kNN imputation with difference-form distances."""
    fit_mask, n_features = ~np.isnan(X_fit), X_fit.shape[1]
    out = X.copy()
    for i, j in zip(*np.nonzero(np.isnan(X)), strict=True):
        dist = []
        for t in np.flatnonzero(fit_mask[:, j]):
            common = ~np.isnan(X[i]) & fit_mask[t]
            if common.any():
                sq = ((X[i, common] - X_fit[t, common]) ** 2).sum()
                dist.append((np.sqrt(n_features / common.sum() * sq), t))
        dist = sorted(dist)[:k]
        if not dist:
            out[i, j] = np.nanmean(X_fit[:, j])
            continue
        d = np.array([a for a, _ in dist])
        v = X_fit[[t for _, t in dist], j]
        if weights == "uniform":
            w = np.ones_like(d)
        else:
            w = (d == 0).astype(float) if (d == 0).any() else 1 / d
        out[i, j] = (w * v).sum() / w.sum()
    return out


def _pair(**params):
    ours = KNNImputer(mean_shrinkage=None, device="cpu", **params)
    theirs = SklearnKNNImputer(**params)
    return ours, theirs


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("n_neighbors", [1, 3, 5, 100])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_sklearn(seed, n_neighbors, weights):
    rate = (0.1, 0.3, 0.6)[seed]
    X, Y = _random_problem(seed, n=30 + 10 * seed, p=4 + 3 * seed, rate=rate)
    ours, theirs = _pair(n_neighbors=n_neighbors, weights=weights)
    # Real-valued data: scikit-learn's Gram-form distances carry rounding
    # error (relative ~1e-16 |x|² / d²), which 1/d weights pass on.
    tol = {"rtol": 1e-12, "atol": 1e-12 if weights == "uniform" else 1e-9}
    np.testing.assert_allclose(ours.fit_transform(X), theirs.fit_transform(X), **tol)
    np.testing.assert_allclose(ours.transform(Y), theirs.transform(Y), **tol)
    # Training rows through transform: still never their own donor.
    np.testing.assert_allclose(ours.transform(X), theirs.transform(X), **tol)


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_matches_brute_force_on_offset_data(weights):
    # Large column offsets: float32 ranking must still give the exact donors
    # (scikit-learn itself loses digits here, hence the brute-force reference).
    X, Y = _random_problem(3, n=50, p=6, rate=0.25)
    X, Y = X + 1e6, Y + 1e6
    est = KNNImputer(
        mean_shrinkage=None, n_neighbors=4, weights=weights, device="cpu"
    ).fit(X)
    np.testing.assert_allclose(
        est.transform(Y), _brute_force(X, Y, 4, weights), atol=1e-8
    )


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("rate", [0.35, 0.8])
def test_searches_chunking_and_fallback_give_identical_results(weights, rate):
    X, Y = _random_problem(4, n=60, p=7, rate=rate)
    base = KNNImputer(mean_shrinkage=None, weights=weights, device="cpu").fit(X)
    expected = base.transform(Y)
    assert np.allclose(expected, _brute_force(X, Y, 5, weights), atol=1e-10)
    settings = [
        ("candidates", None, None),
        ("candidates", 1, None),  # one row per chunk
        ("candidates", None, 1),  # one candidate: most entries fall back
        ("candidates", 3, 2),
        ("donors", None, None),
        ("donors", 1, None),
    ]
    for search, chunk_rows, n_candidates in settings:
        est = KNNImputer(mean_shrinkage=None, weights=weights, device="cpu").fit(X)
        est._search, est._chunk_rows, est._n_candidates = (
            search,
            chunk_rows,
            n_candidates,
        )
        np.testing.assert_allclose(est.transform(Y), expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            est.fit_transform(X), base.fit_transform(X), rtol=0, atol=1e-12
        )


def test_certification_not_fooled_by_loose_float32_bounds():
    # Row 0 has a huge (centred) value where the query is missing: its
    # float32 bound is loose, so it ranks first although row 1 is nearer
    # (ratio 1 vs 1.002). With one candidate the entry must not be accepted
    # from it; row 2 only sets the column mean of the last column.
    nan = np.nan
    X = np.array([[1.001, 1.001, 100, 1000], [1, 1, 0, nan], [50, 50, nan, -1000]])
    Y = np.array([[0.0, 0.0, nan, nan]])
    est = KNNImputer(mean_shrinkage=None, n_neighbors=1, device="cpu").fit(X)
    est._search, est._n_candidates = "candidates", 1
    np.testing.assert_array_equal(est.transform(Y), [[0, 0, 0, 1000]])
    np.testing.assert_array_equal(
        SklearnKNNImputer(n_neighbors=1).fit(X).transform(Y), [[0, 0, 0, 1000]]
    )


def test_float32_lower_bounds_hold():

    from sklearn_mc._knn_rows import LowerBounds as _LowerBounds

    rng = np.random.RandomState(9)
    A, B = rng.uniform(-1, 1, (60, 40)), rng.uniform(-1, 1, (90, 40))
    A[:, :5] *= 1e-4  # mixed magnitudes: relative errors differ per pair
    mA, mB = rng.rand(*A.shape) < 0.3, rng.rand(*B.shape) < 0.5
    A, B = np.where(mA, A, 0.0), np.where(mB, B, 0.0)
    common = mA.astype(float) @ mB.T
    sq = (A**2) @ mB.T + mA @ (B**2).T - 2 * A @ B.T
    exact = np.where(common > 0, np.maximum(sq, 0) / np.maximum(common, 1), np.inf)
    bounds = _LowerBounds(torch.as_tensor(B), torch.as_tensor(mB, dtype=torch.float64))
    lower = bounds(torch.as_tensor(A), torch.as_tensor(mA, dtype=torch.float64))
    safe = bounds.threshold(lower).double().numpy()
    assert (safe <= exact).all()
    assert np.array_equal(np.isinf(safe), np.isinf(exact))
    finite = np.isfinite(exact) & (exact > 0.1)
    assert np.median(1 - safe[finite] / exact[finite]) < 1e-3


def test_search_choice_follows_sparsity():
    from sklearn_mc._knn_rows import pick_search

    rng = np.random.RandomState(0)
    dense = rng.rand(2000, 100) < 0.8
    ratings = rng.rand(900, 1500) < 0.03
    assert pick_search(dense, 18) == "candidates"
    assert pick_search(ratings, 258) == "donors"


@pytest.mark.parametrize("search", ["candidates", "donors"])
def test_working_memory_bounds_chunks(monkeypatch, search):
    import sklearn

    import sklearn_mc._knn_rows as knn

    X, Y = _random_problem(5, n=200, p=5)
    expected = KNNImputer(mean_shrinkage=None, device="cpu").fit(X).transform(Y)
    chunks = []
    spied = "impute_candidates" if search == "candidates" else "impute_exact"
    original = getattr(knn, spied)

    def spy(A, *args):
        chunks.append(A.shape[0])
        return original(A, *args)

    monkeypatch.setattr(knn, spied, spy)
    est = KNNImputer(mean_shrinkage=None, device="cpu").fit(X)
    est._search = search
    with sklearn.config_context(working_memory=0.01):  # 10 KiB
        out = est.transform(Y)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    assert max(chunks) * 200 * 8 <= 0.01 * 2**20 and len(chunks) > 1


def test_rows_without_overlap_get_column_mean():
    X = np.array([[1.0, 2, np.nan], [3, 4, np.nan], [np.nan, np.nan, 6], [5, 8, 8]])
    Y = np.array([[np.nan, np.nan, 7.0], [np.nan, np.nan, np.nan]])
    ours, theirs = _pair(n_neighbors=2)
    out = ours.fit(X).transform(Y)
    np.testing.assert_allclose(out, theirs.fit(X).transform(Y))
    # Row 0 shares a coordinate only with the training row [5, 8, 8].
    np.testing.assert_allclose(out[0], [5, 8, 7])
    np.testing.assert_allclose(out[1], [3, 14 / 3, 7])
    X_no_overlap = X[:3]
    out = ours.fit(X_no_overlap).transform(Y[:1])
    np.testing.assert_allclose(out, [[2, 3, 7]])
    np.testing.assert_allclose(out, theirs.fit(X_no_overlap).transform(Y[:1]))


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_one_sample_and_one_feature(weights):
    ours, theirs = _pair(weights=weights)
    X = np.array([[1.0, np.nan, 3.0]])
    np.testing.assert_allclose(ours.fit_transform(X), theirs.fit_transform(X))
    X = np.array([[1.0, 2.0, 3.0]])
    Y = np.array([[np.nan, 2.0, 5.0], [4.0, np.nan, np.nan], [np.nan] * 3])
    np.testing.assert_allclose(ours.fit(X).transform(Y), theirs.fit(X).transform(Y))
    X = np.array([[1.0], [np.nan], [4.0]])
    np.testing.assert_allclose(ours.fit_transform(X), theirs.fit_transform(X))


def test_distance_weights_zero_distance_rule():
    X = np.array([[0.0, 0, 10], [0, 0, 20], [1, 1, 30], [2, 2, 40]])
    Y = np.array([[0.0, 0, np.nan], [1.4, 1.4, np.nan]])
    ours, theirs = _pair(n_neighbors=2, weights="distance")
    out = ours.fit(X).transform(Y)
    np.testing.assert_allclose(out, theirs.fit(X).transform(Y))
    # Two donors at distance 0 share all the weight.
    assert out[0, 2] == 15.0
    # Otherwise 1/d, with distances proportional to 0.4 and 0.6.
    np.testing.assert_allclose(out[1, 2], (30 / 0.4 + 40 / 0.6) / (1 / 0.4 + 1 / 0.6))


def test_missing_marker_and_empty_columns_like_sklearn():
    X, Y = _random_problem(6, n=30, p=5)
    X[:, 1] = np.nan
    # New rows' observed values in a column empty at fit are kept here (set
    # to 0 by scikit-learn under keep_empty_features=True): compare the rest.
    Y[:, 1] = np.nan
    for keep in (False, True):
        ours, theirs = _pair(keep_empty_features=keep)
        np.testing.assert_allclose(ours.fit_transform(X), theirs.fit_transform(X))
        np.testing.assert_allclose(ours.transform(Y), theirs.transform(Y))
    marked, marked_y = np.nan_to_num(X, nan=-1.0), np.nan_to_num(Y, nan=-1.0)
    ours, theirs = _pair(missing_values=-1.0)
    np.testing.assert_allclose(ours.fit_transform(marked), theirs.fit_transform(marked))
    np.testing.assert_allclose(ours.transform(marked_y), theirs.transform(marked_y))


def test_ties_fall_as_in_sklearn():
    # Integer data: exact ties at the k-th donor everywhere. scikit-learn
    # keeps the donors np.argpartition puts first, which is not the first
    # ones by position; the completion must be scikit-learn's, bit for bit
    # up to the order of the final sum.
    rng = np.random.RandomState(7)
    X = rng.randint(0, 3, size=(40, 6)).astype(float)
    X[rng.rand(*X.shape) < 0.2] = np.nan
    for k in (1, 2, 4, 7):
        for weights in ("uniform", "distance"):
            ours, theirs = _pair(n_neighbors=k, weights=weights)
            np.testing.assert_allclose(
                ours.fit_transform(X), theirs.fit_transform(X), rtol=1e-12, atol=0
            )


def test_issue_17_reproduction_row_independent():
    # Old code: a batch-wide rescaling turned exact ties into near-ties, so
    # row 3 got [1, 1] in the batch and [2, 1] alone.
    nan = np.nan
    X = np.array([[nan, 2], [1, 0], [nan, nan], [nan, 1], [2, 2], [nan, 2.0]])
    est = KNNImputer(mean_shrinkage=None, n_neighbors=1, device="cpu").fit(X)
    np.testing.assert_array_equal(est.transform(X)[3], [1.0, 1.0])
    np.testing.assert_array_equal(est.transform(X[3:4])[0], [1.0, 1.0])
    sk = SklearnKNNImputer(n_neighbors=1).fit(X)
    np.testing.assert_array_equal(sk.transform(X[3:4])[0], [1.0, 1.0])


def test_argpartition_rule_is_not_first_by_position():
    # scikit-learn keeps the donors np.argpartition puts first; among tied
    # donors that is not the first by position (here the last of two at
    # distance 0), and the completion follows it.
    root2 = np.sqrt(2.0)
    assert np.argpartition([root2, root2, 0.0, 0.0], 0)[0] == 3
    X = np.array([[1, 5], [1, 6], [0, 10], [0, 20], [0, np.nan]])
    ours, theirs = _pair(n_neighbors=1)
    assert theirs.fit_transform(X)[4, 1] == 20.0
    assert ours.fit_transform(X)[4, 1] == 20.0
    assert ours.transform(X[4:])[0, 1] == 20.0


def test_float32_input():
    X, Y = _random_problem(11, n=30, p=5)
    X32 = np.round(X * 4).astype(np.float32) / 4
    est = KNNImputer(mean_shrinkage=None, n_neighbors=3, device="cpu")
    out = est.fit_transform(X32)
    assert np.isfinite(out).all()
    ref = SklearnKNNImputer(n_neighbors=3).fit_transform(X32.astype(np.float64))
    np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_max_donors_subsample():
    X, Y = _random_problem(12, n=60, p=5, rate=0.3)
    exact = KNNImputer(mean_shrinkage=None, device="cpu").fit(X)
    # At least as many donors as rows: the exact method.
    same = KNNImputer(mean_shrinkage=None, max_donors=60, device="cpu").fit(X)
    np.testing.assert_array_equal(same.transform(Y), exact.transform(Y))
    a = KNNImputer(
        mean_shrinkage=None, max_donors=10, random_state=0, device="cpu"
    ).fit(X)
    b = KNNImputer(
        mean_shrinkage=None, max_donors=10, random_state=0, device="cpu"
    ).fit(X)
    np.testing.assert_array_equal(a.transform(Y), b.transform(Y))
    # The subsample's rows (plus a donor for any column they miss) are the
    # donors: the same as scikit-learn fitted on those rows.
    donors = X[a._donor_rows]
    assert 10 <= len(donors) <= 15 and (~np.isnan(donors)).any(axis=0).all()
    np.testing.assert_allclose(
        a.transform(Y),
        SklearnKNNImputer().fit(donors).transform(Y),
        rtol=1e-12,
        atol=1e-12,
    )
    with pytest.raises(ValueError, match="max_donors"):
        KNNImputer(max_donors=0).fit(X)


# --------------------------------------------------------- axis="features"
def _columns_case():
    # Column 1 is 10 x column 0, column 2 is its mirror image, column 3 shares
    # no training row with the others (undefined distances).
    nan = np.nan
    return np.array(
        [
            [1.0, 10, 4, nan],
            [2, 20, 3, nan],
            [3, 30, 2, nan],
            [4, 40, 1, nan],
            [nan, nan, nan, 7],
            [nan, nan, nan, 9],
        ]
    )


def test_features_axis_hand_checked():
    X = _columns_case()
    Y = np.array([[np.nan, 40, 1, 100], [np.nan, np.nan, np.nan, 100.0]])
    # Nearest column to 0 is column 1 (standardised copy): x0 = x1 / 10.
    one = KNNImputer(
        mean_shrinkage=None, n_neighbors=1, axis="features", device="cpu"
    ).fit(X)
    np.testing.assert_allclose(one.transform(Y), [[4, 40, 1, 100], [2.5, 25, 2.5, 100]])
    # Column 3 is undefined, so 3 neighbours are columns 1 and 2, and the
    # mirrored column cancels column 1: the mean.
    two = KNNImputer(
        mean_shrinkage=None, n_neighbors=3, axis="features", device="cpu"
    ).fit(X)
    np.testing.assert_allclose(two.transform(Y)[0], [2.5, 40, 1, 100])
    # 1/d weights: column 1 is at distance 0 and takes all the weight.
    dist = KNNImputer(
        n_neighbors=3,
        weights="distance",
        axis="features",
        mean_shrinkage=None,
        device="cpu",
    )
    np.testing.assert_allclose(dist.fit(X).transform(Y)[0], [4, 40, 1, 100])
    # Column 3 has no defined distance to the others: column means.
    out = two.fit_transform(X)
    np.testing.assert_allclose(out[:4, 3], 8.0)
    np.testing.assert_allclose(out[4:, :3], [[2.5, 25, 2.5]] * 2)


def test_features_axis_chunking_and_correlated_columns():
    rng = np.random.RandomState(8)
    z = rng.standard_normal((80, 1))
    scales, offsets = np.array([1, 100, 3, 0.5]), np.array([0, 5, 1, -2])
    X = z * scales + offsets + 0.01 * rng.standard_normal((80, 4))
    X_missing = X.copy()
    X_missing[rng.rand(*X.shape) < 0.2] = np.nan
    est = KNNImputer(mean_shrinkage=None, n_neighbors=2, axis="features", device="cpu")
    out = est.fit_transform(X_missing)
    # Rows that observe another column: columns on very different scales
    # still inform each other.
    hidden = np.isnan(X_missing) & (~np.isnan(X_missing)).any(axis=1, keepdims=True)
    for j in range(4):
        err = np.sqrt(np.mean((out - X)[hidden[:, j], j] ** 2))
        assert err < 0.25 * X[:, j].std()
    est._chunk_rows = 3
    np.testing.assert_allclose(est.transform(X_missing), out, rtol=0, atol=1e-12)


def test_bad_parameters():
    X = np.array([[1.0, np.nan], [2, 3]])
    with pytest.raises(ValueError, match="axis"):
        KNNImputer(axis="rows").fit(X)
    with pytest.raises(ValueError, match="n_neighbors"):
        KNNImputer(n_neighbors=0).fit(X)
    with pytest.raises(ValueError, match="weights"):
        KNNImputer(weights="gaussian").fit(X)


def test_ties_do_not_depend_on_the_other_rows_transformed():
    # Many donors at distance 0 with different values in column 3: which
    # five are used must not change with the order (or company) of the
    # rows transformed. Found by the property test in test_common.py.
    X = np.ones((11, 5))
    X[0, :2] = 0.0
    X[3, 3] = 0.0
    X[[1, 2], 0] = X[6, 1] = X[9, 3] = np.nan
    est = KNNImputer(
        mean_shrinkage=None,
    ).fit(X)
    perm = np.arange(X.shape[0])[::-1]
    np.testing.assert_array_equal(est.transform(X[perm]), est.transform(X)[perm])
    np.testing.assert_array_equal(est.transform(X[9:10]), est.transform(X)[9:10])
    # The rule is scikit-learn's (np.argpartition over the donors).
    sk = SklearnKNNImputer().fit(X)
    np.testing.assert_allclose(est.transform(X), sk.transform(X), rtol=1e-12)


def test_grid_rows_replay_ties_and_fall_back_like_sklearn(monkeypatch):
    # Integers 1-5: many exact ties at the k-th donor between donors of
    # different values (scikit-learn's argpartition decides them) and, with
    # few candidates, many entries not certified from them. Both go through
    # the full rows of the same exact distances.
    import sklearn_mc._knn_rows as knn

    rng = np.random.RandomState(8)
    X = rng.randint(1, 6, size=(300, 12)).astype(float)
    X[rng.rand(*X.shape) < 0.25] = np.nan
    calls = {"replay": 0, "redo": 0}
    replay, redo = knn._argpartition_rule, knn.select_exact

    def spy_replay(*args):
        calls["replay"] += 1
        return replay(*args)

    def spy_redo(*args, **kwargs):
        calls["redo"] += 1
        return redo(*args, **kwargs)

    monkeypatch.setattr(knn, "_argpartition_rule", spy_replay)
    monkeypatch.setattr(knn, "select_exact", spy_redo)
    for weights in ("uniform", "distance"):
        for n_cand, chunk in ((None, None), (3, 7)):
            ours = KNNImputer(
                mean_shrinkage=None, n_neighbors=5, weights=weights, device="cpu"
            )
            ours._search, ours._n_candidates, ours._chunk_rows = (
                "candidates",
                n_cand,
                chunk,
            )
            theirs = SklearnKNNImputer(n_neighbors=5, weights=weights)
            np.testing.assert_allclose(
                ours.fit_transform(X), theirs.fit_transform(X), rtol=1e-12, atol=0
            )
    assert calls["replay"] > 0 and calls["redo"] > 0


def test_grid_rows_with_wide_integers_like_sklearn():
    # Integers near 2**22 on 8 columns: Gram sums exact in float64, but too
    # wide to pack the common counts into the same product (three products).
    rng = np.random.RandomState(9)
    X = rng.randint(-(2**22), 2**22, size=(80, 8)).astype(float)
    X[:, 0] = np.round(X[:, 0] / 2**20) * 2**20  # ties on a coarse column
    X[rng.rand(*X.shape) < 0.3] = np.nan
    ours, theirs = _pair(n_neighbors=3)
    np.testing.assert_allclose(
        ours.fit_transform(X), theirs.fit_transform(X), rtol=1e-12, atol=0
    )
