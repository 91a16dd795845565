"""Exact-grid distances of the KNN imputer (``sklearn_mc._knn_grid``)."""

import numpy as np
import pytest
import torch

from sklearn_mc import _knn_grid, _knn_rows


@pytest.mark.parametrize(
    "top, float32_exact, mode",
    [
        (5, True, torch.float32),  # small integers: one float32 product
        (5, False, torch.float64),  # float32 not allowed: float64 product
        (2**22, True, None),  # S + c n_common beyond 2**53: three products
    ],
)
def test_packed_gram_sums_are_exact(top, float32_exact, mode):
    rng = np.random.RandomState(3)
    X = rng.randint(-top, top + 1, size=(30, 8)).astype(float)
    X[rng.rand(*X.shape) < 0.3] = np.nan
    mask = ~np.isnan(X)
    A = np.nan_to_num(X)
    cpu = torch.device("cpu")
    grid = _knn_grid.grid(X[mask])
    train = _knn_rows.Train(X, mask, np.nanmean(X, 0), grid, cpu, torch.float64)
    assert _knn_grid.rows_on_grid(A, mask, train.grid, 8).all()
    gram = _knn_grid.PackedGram(train, 0, float(top), float32_exact=float32_exact)
    assert gram.dtype == mode
    S, count = gram(torch.as_tensor(A), torch.as_tensor(mask))
    # The difference form, one coordinate at a time, in exact integers.
    diff = (A[:, None, :] - A[None, :, :]) ** 2
    both = mask[:, None, :] & mask[None, :, :]
    expected = np.where(both, diff, 0).astype(np.int64).sum(-1)
    got = (S.double() * gram.unit2).numpy()
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(count.numpy(), both.sum(-1))
