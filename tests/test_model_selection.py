"""Tests of sklearn_mc.model_selection."""

import numpy as np
import pytest

from sklearn_mc.model_selection import hide_entries, split_indices


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
