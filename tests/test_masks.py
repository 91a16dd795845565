"""Tests of ``sklearn_mc.datasets.make_mask`` (``sklearn_mc._masks``): the
AIR-Net paper's patterns and the data-dependent MAR / MNAR kinds."""

from __future__ import annotations

import numpy as np
import pytest

from sklearn_mc.datasets import make_mask


# ------------------------------------------------ random, patch and texture
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


# ------------------------------- make_mask's data-dependent kinds: MAR, MNAR


@pytest.fixture(scope="module")
def table():
    rng = np.random.RandomState(0)
    Z = rng.standard_normal((3000, 3))
    return Z @ rng.standard_normal((3, 10)) + 0.3 * rng.standard_normal((3000, 10))


@pytest.mark.parametrize("kind", ["mar", "mnar", "mnar_self"])
@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_data_dependent_mask_overall_rate(table, kind, rate):
    mask = make_mask(table.shape, kind, X=table, missing_rate=rate, random_state=0)
    assert mask.dtype == bool and mask.shape == table.shape
    assert abs(mask.mean() - rate) < 0.015


def test_mar_keeps_inputs_observed_and_depends_on_them(table):
    mask = make_mask(table.shape, "mar", X=table, missing_rate=0.3, random_state=1)
    always = np.flatnonzero(~mask.any(axis=0))
    assert always.size == 3  # int(0.3 * 10)
    # the share missing in a row rises with its always-observed values
    # (positive logistic weights)
    score = table[:, always].sum(axis=1)
    share = mask.mean(axis=1)
    assert np.corrcoef(score, share)[0, 1] > 0.3


def test_mnar_inputs_missing_completely_at_random(table):
    mask = make_mask(table.shape, "mnar", X=table, missing_rate=0.3, random_state=2)
    assert mask.all(axis=0).sum() == 0 and (~mask.any(axis=0)).sum() == 0
    rates = mask.mean(axis=0)
    assert np.all(np.abs(rates - 0.3) < 0.04)


def test_self_masking_hides_large_values(table):
    mask = make_mask(
        table.shape, "mnar_self", X=table, missing_rate=0.3, random_state=3
    )
    for j in range(table.shape[1]):
        gap = table[mask[:, j], j].mean() - table[~mask[:, j], j].mean()
        assert gap > 0.5 * table[:, j].std()


def test_data_dependent_mask_seeded_and_differs_across_seeds(table):
    a = make_mask(table.shape, "mar", X=table, random_state=4)
    b = make_mask(table.shape, "mar", X=table, random_state=4)
    c = make_mask(table.shape, "mar", X=table, random_state=5)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_data_dependent_mask_errors(table):
    with pytest.raises(ValueError, match="pass X"):
        make_mask(table.shape, "mar")
    with pytest.raises(ValueError, match="shape"):
        make_mask((5, 5), "mnar", X=table)
    bad = table.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="complete table"):
        make_mask(bad.shape, "mar", X=bad)
    with pytest.raises(ValueError, match="per-column rate"):
        make_mask((50, 2), "mar", X=table[:50, :2], missing_rate=0.6)
    with pytest.raises(ValueError, match="at least two columns"):
        make_mask((50, 1), "mnar", X=table[:50, :1])
    with pytest.raises(ValueError, match="observed_fraction"):
        make_mask(table.shape, "mar", X=table, observed_fraction=1.0)
    with pytest.raises(ValueError, match="kind must be"):
        make_mask(table.shape, "mcar")
