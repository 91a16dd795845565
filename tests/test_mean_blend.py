"""Shrinkage toward the column means (``sklearn_mc._mean_blend``)."""

import numpy as np
import pytest

from sklearn_mc._mean_blend import blend_weights, shrink_missing, warn_shrunk_to_mean


def test_weights_are_the_regularised_least_squares_slope():
    rng = np.random.RandomState(0)
    a = rng.randn(200)
    cols = np.repeat([0, 1], 100)
    # column 0: truth = 0.5 * prediction exactly; column 1: truth = -prediction
    b = np.where(cols == 0, 0.5 * a, -a)
    w = blend_weights(a, b, cols, 3, prior_entries=0.0)
    np.testing.assert_allclose(w[:2], [0.5, 0.0])  # the negative slope clips
    assert w[2] == 1.0  # a column without held-out entries keeps the model
    w_prior = blend_weights(a, b, cols, 3, prior_entries=100.0)
    np.testing.assert_allclose(w_prior[0], (100 * 0.5 + 100) / 200)


def test_constant_prediction_keeps_weight_one():
    w = blend_weights(np.zeros(5), np.ones(5), np.zeros(5, dtype=int), 1)
    assert w[0] == 1.0


@pytest.mark.parametrize("n_rows", [3, 50_000])  # one block, several blocks
def test_shrink_touches_only_missing_entries(n_rows):
    rng = np.random.RandomState(1)
    out = rng.randn(n_rows, 4)
    mask = rng.rand(n_rows, 4) < 0.5
    before = out.copy()
    w, mean = np.array([0.0, 0.5, 1.0, 0.25]), np.array([1.0, 2.0, 3.0, 4.0])
    shrink_missing(out, mask, w, mean)
    np.testing.assert_array_equal(out[mask], before[mask])
    expected = mean + w * (before - mean)
    np.testing.assert_allclose(out[~mask], expected[~mask])


def test_warning_names_the_columns_shrunk_to_the_mean():
    class Est:
        feature_names_in_ = np.array(["a", "b", "c"])

    with pytest.warns(UserWarning, match=r"1 column\(s\) \(c\)"):
        warn_shrunk_to_mean(Est(), np.array([1.0, 0.0]), [0, 2], "x", "hint")


@pytest.mark.parametrize(
    "value, rule",
    [
        ("auto", "auto"),
        (True, "auto"),
        (None, None),
        (False, None),
        (0, None),
        (0.0, None),
        (0.25, 0.75),
        (1, 0.0),
    ],
)
def test_shrinkage_rule_reads_the_parameter_as_the_imputers_document(value, rule):
    from sklearn_mc._mean_blend import shrinkage_rule

    assert shrinkage_rule(value) == rule
