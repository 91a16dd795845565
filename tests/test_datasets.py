"""Tests of sklearn_mc.datasets: synthetic matrices and rating data (the masks
are in ``test_masks.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from sklearn_mc._observed import ObservedEntries
from sklearn_mc.datasets import load_ratings, make_low_rank, make_ratings

# ---------------------------------------------------------------- make_low_rank


def test_make_low_rank_has_rank_and_unit_factors():
    X, U, V = make_low_rank(300, 200, 4, random_state=0, return_factors=True)
    assert np.linalg.matrix_rank(X) == 4
    np.testing.assert_allclose(X, U @ V.T)
    assert abs(U.std() - 1) < 0.05 and abs(V.std() - 1) < 0.05
    np.testing.assert_array_equal(X, make_low_rank(300, 200, 4, random_state=0))


def test_make_low_rank_rejects_bad_shapes():
    with pytest.raises(ValueError, match="rank"):
        make_low_rank(5, 5, 0)


# ---------------------------------------------------------------- make_ratings


def test_make_ratings_shape_levels_density():
    X, X_full = make_ratings(300, 200, density=0.05, random_state=0, return_truth=True)
    assert X.shape == X_full.shape == (300, 200)
    observed = ~np.isnan(X)
    assert abs(observed.mean() - 0.05) < 0.01
    np.testing.assert_array_equal(X[observed], X_full[observed])
    assert set(np.unique(X_full)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    # every user and every item has at least one rating
    assert observed.any(axis=1).all() and observed.any(axis=0).all()
    # a bell-shaped histogram: the middle level is the most common one
    counts = np.array([(X_full == v).sum() for v in range(1, 6)])
    assert counts.argmax() == 2


def test_make_ratings_reproducible_and_seeded():
    a = make_ratings(50, 40, random_state=3)
    b = make_ratings(50, 40, random_state=3)
    c = make_ratings(50, 40, random_state=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.isnan(a), np.isnan(c))


def test_make_ratings_popularity_skew():
    def spread(skew):
        X = make_ratings(400, 300, density=0.05, skew=skew, random_state=0)
        per_item = (~np.isnan(X)).sum(axis=0)
        return per_item.std() / per_item.mean()

    assert spread(1.0) > 2 * spread(0.0)


def test_make_ratings_low_rank_signal_without_noise():
    # with no noise and fine levels the ratings are a rank-2 matrix up to the
    # clipping of its tails (beyond two standard deviations) at the end levels
    _, X_full = make_ratings(
        200, 100, rank=2, noise=0.0, levels=np.linspace(0, 1, 101),
        random_state=0, return_truth=True,
    )  # fmt: skip
    s = np.linalg.svd(X_full - X_full.mean(), compute_uv=False)
    assert (s[:2] ** 2).sum() / (s**2).sum() > 0.97
    assert s[2] < 0.15 * s[1]


def test_make_ratings_custom_levels():
    X = make_ratings(60, 50, density=0.3, levels=[-1, 0.5, 2], random_state=0)
    assert set(np.unique(X[~np.isnan(X)])) <= {-1.0, 0.5, 2.0}


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(n_users=0), "n_users"),
        (dict(rank=1.5), "rank"),
        (dict(density=0.0), "density"),
        (dict(density=1.5), "density"),
        (dict(skew=-1.0), "skew"),
        (dict(noise=-0.1), "noise"),
        (dict(levels=[3, 1]), "increasing"),
        (dict(levels=[1]), "at least two"),
    ],
)
def test_make_ratings_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        make_ratings(**{"n_users": 10, "n_items": 10, **params})


# ---------------------------------------------------------------- load_ratings

ROWS = [  # user, item, rating, timestamp
    (196, 242, 3, 881250949),
    (186, 302, 3, 891717742),
    (22, 377, 1, 878887116),
    (196, 302, 4, 881250950),
    (22, 242, 5, 878887117),
]


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def expected_dense():
    # users sorted: 22, 186, 196; items sorted: 242, 302, 377
    return np.array([[5.0, np.nan, 1.0], [np.nan, 3.0, np.nan], [3.0, 4.0, np.nan]])


def check(data):
    np.testing.assert_array_equal(data.user_ids, [22, 186, 196])
    np.testing.assert_array_equal(data.item_ids, [242, 302, 377])
    np.testing.assert_array_equal(data.X, expected_dense())
    assert data.shape == (3, 3)
    # triplets point at the same entries
    np.testing.assert_array_equal(data.X[data.rows, data.cols], data.ratings)
    assert data.ratings.size == 5


def test_load_movielens_100k(tmp_path):
    path = write(tmp_path / "u.data", ["\t".join(map(str, r)) for r in ROWS])
    check(load_ratings(path, format="movielens-100k"))
    data = load_ratings(path)  # auto
    check(data)
    assert data.timestamps.dtype.kind == "i" and data.timestamps.size == 5


def test_load_movielens_1m(tmp_path):
    path = write(tmp_path / "ratings.dat", ["::".join(map(str, r)) for r in ROWS])
    check(load_ratings(path, format="movielens-1m"))
    check(load_ratings(str(path)))


def test_load_csv_with_and_without_header(tmp_path):
    lines = [",".join(map(str, r)) for r in ROWS]
    with_header = write(
        tmp_path / "ratings.csv", ["userId,movieId,rating,timestamp"] + lines
    )
    check(load_ratings(with_header, format="csv"))
    check(load_ratings(with_header))
    no_header = write(tmp_path / "plain.csv", [",".join(map(str, r[:3])) for r in ROWS])
    data = load_ratings(no_header)
    check(data)
    assert data.timestamps is None


def test_load_triplets_only(tmp_path):
    path = write(tmp_path / "u.data", ["\t".join(map(str, r)) for r in ROWS])
    data = load_ratings(path, output="triplets")
    assert "X" not in data
    dense = np.full(data.shape, np.nan)
    dense[data.rows, data.cols] = data.ratings
    np.testing.assert_array_equal(dense, expected_dense())


def test_load_string_ids_half_stars_and_duplicates(tmp_path):
    path = write(
        tmp_path / "r.csv",
        ["user,item,rating", "bob,x1,3.5", "amy,x2,4", "bob,x1,2.5", "amy,x1,1"],
    )
    data = load_ratings(path)
    np.testing.assert_array_equal(data.user_ids, ["amy", "bob"])
    np.testing.assert_array_equal(data.item_ids, ["x1", "x2"])
    # the later line of a repeated (user, item) pair wins
    np.testing.assert_array_equal(data.X, [[1.0, 4.0], [2.5, np.nan]])
    assert data.ratings.size == 3


def test_load_bad_inputs(tmp_path):
    path = write(tmp_path / "u.data", ["\t".join(map(str, r)) for r in ROWS])
    with pytest.raises(ValueError, match="format must be"):
        load_ratings(path, format="json")
    with pytest.raises(ValueError, match="output must be"):
        load_ratings(path, output="sparse")
    odd = write(tmp_path / "odd.txt", ["1 2 3", "4 5 6"])
    with pytest.raises(ValueError, match="cannot tell the format"):
        load_ratings(odd)
    short = write(tmp_path / "short.csv", ["1,2", "3,4"])
    with pytest.raises(ValueError, match="at least user, item and rating"):
        load_ratings(short)
    bad = write(tmp_path / "bad.csv", ["1,2,3", "3,4,good"])
    with pytest.raises(ValueError, match="non-numeric rating"):
        load_ratings(bad)


def test_make_ratings_sparse_output():
    S = make_ratings(400, 250, density=0.04, output="sparse", random_state=0)
    assert sp.issparse(S) and S.shape == (400, 250)
    assert 0.03 < S.nnz / (400 * 250) < 0.05
    assert set(np.unique(S.data)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    e = ObservedEntries.from_sparse(S)
    assert (e.row_counts() > 0).all() and (e.col_counts() > 0).all()
    again = make_ratings(400, 250, density=0.04, output="sparse", random_state=0)
    assert (again != S).nnz == 0
    # popularity skew: the busiest item has far more ratings than the median
    counts = e.col_counts()
    assert counts.max() > 5 * np.median(counts)
    with pytest.raises(ValueError, match="return_truth=True needs output='dense'"):
        make_ratings(10, 10, output="sparse", return_truth=True)
    with pytest.raises(ValueError, match="output must be"):
        make_ratings(10, 10, output="coo")


def test_sparse_make_ratings_follows_the_dense_model():
    # The observation probabilities: the sparse path's density scale, found
    # without the outer product, equals the dense path's.
    from sklearn_mc.datasets import _scale_to_density, _sparse_density_scale

    rng = np.random.RandomState(0)
    activity = (1.0 + rng.permutation(300)) ** -1.0
    popularity = (1.0 + rng.permutation(200)) ** -1.0
    weight = np.outer(activity, popularity)
    for density in (0.01, 0.2, 0.9):
        c = _sparse_density_scale(activity, popularity, density)
        np.testing.assert_allclose(
            np.minimum(1, c * weight), _scale_to_density(weight, density), rtol=1e-9
        )
    # the rating histogram is the dense one's, up to sampling noise
    dense = make_ratings(300, 200, density=0.2, random_state=0)
    sparse = make_ratings(300, 200, density=0.2, output="sparse", random_state=0)
    hist_d = np.bincount(dense[~np.isnan(dense)].astype(int), minlength=6)[1:]
    hist_s = np.bincount(sparse.data.astype(int), minlength=6)[1:]
    np.testing.assert_allclose(hist_s / hist_s.sum(), hist_d / hist_d.sum(), atol=0.02)
