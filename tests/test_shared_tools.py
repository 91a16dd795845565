import numpy as np
import pytest

from sklearn_mc.datasets import make_low_rank, make_mask
from sklearn_mc.metrics import mae, nmae, relative_error, rmse
from sklearn_mc.model_selection import hide_entries, split_indices


def test_make_low_rank_has_rank_and_unit_factors():
    X, U, V = make_low_rank(300, 200, 4, random_state=0, return_factors=True)
    assert np.linalg.matrix_rank(X) == 4
    np.testing.assert_allclose(X, U @ V.T)
    assert abs(U.std() - 1) < 0.05 and abs(V.std() - 1) < 0.05
    np.testing.assert_array_equal(X, make_low_rank(300, 200, 4, random_state=0))


def test_make_low_rank_rejects_bad_shapes():
    with pytest.raises(ValueError, match="rank"):
        make_low_rank(5, 5, 0)


@pytest.mark.parametrize(
    "kind, rate, tol", [("random", 0.3, 0.01), ("texture", 0.095, 0.03)]
)
def test_mask_rates(kind, rate, tol):
    mask = make_mask((240, 240), kind, random_state=0)
    assert abs(mask.mean() - rate) < tol


def test_patch_mask_is_two_square_blocks():
    mask = make_mask((240, 240), "patch", random_state=0)
    assert 0.015 < mask.mean() <= 0.037  # two 32x32 blocks (may overlap)
    rows, cols = np.nonzero(mask)
    assert rows.max() - rows.min() >= 31 and cols.max() - cols.min() >= 31


def test_texture_mask_is_thin_strokes():
    mask = make_mask((120, 120), "texture", random_state=0)
    # Strokes are thin: most missing pixels have an observed 4-neighbour.
    padded = np.pad(mask, 1, constant_values=False)
    interior = (
        padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    )
    assert (interior & mask).sum() < 0.5 * mask.sum()


def test_make_mask_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        make_mask((4, 4), "stripes")


def test_metrics_on_chosen_entries():
    X = np.array([[0.0, 1.0], [2.0, 4.0]])
    Y = np.array([[0.0, 2.0], [2.0, 2.0]])
    mask = np.array([[False, True], [False, True]])
    assert rmse(X, Y, mask) == pytest.approx(np.sqrt((1 + 4) / 2))
    assert mae(X, Y, mask) == pytest.approx(1.5)
    assert nmae(X, Y, mask) == pytest.approx(1.5 / 4)
    assert relative_error(X, Y, mask) == pytest.approx(np.sqrt(5 / 17))
    assert rmse(X, Y) == pytest.approx(np.sqrt(5 / 4))
    with pytest.raises(ValueError, match="no entries"):
        rmse(X, Y, np.zeros((2, 2), bool))


def test_hide_entries_hides_only_observed():
    X = np.arange(20.0).reshape(4, 5)
    X[0, 0] = np.nan
    X_train, hidden = hide_entries(X, fraction=0.25, random_state=0)
    assert hidden.sum() == round(0.25 * 19)
    assert not hidden[0, 0]
    assert np.isnan(X_train[hidden]).all()
    kept = ~hidden & ~np.isnan(X)
    np.testing.assert_array_equal(X_train[kept], X[kept])


def test_split_indices_keeps_and_holds_out_at_least_one():
    kept, out = split_indices(2, 0.01, random_state=0)
    assert len(kept) == 1 and len(out) == 1
    kept, out = split_indices(10, 0.0, random_state=0)
    assert len(out) == 0
    with pytest.raises(ValueError):
        split_indices(10, 1.0)
