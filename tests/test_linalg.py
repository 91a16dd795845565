"""The shared linear algebra (sklearn_mc._linalg) against plain references."""

import numpy as np
import pytest
import torch

from sklearn_mc import _linalg
from sklearn_mc._torch import make_generator

# torch says once per process that its CSR support is beta
pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support")


def _problem(m=9, n=7, k=3, density=0.5, seed=0):
    rng = np.random.RandomState(seed)
    mask = rng.rand(m, n) < density
    F = rng.randn(n, k)
    Y = np.where(mask, rng.randn(m, n), 0.0)
    return mask, F, Y


def _sparse(mask, layout):
    dense = torch.as_tensor(mask.astype(np.float64))
    if layout == "dense":
        return dense
    if layout == "coo":
        return dense.to_sparse_coo()
    return dense.to_sparse_csr()


def _reference_gram(mask, F, ridge):
    gram = np.einsum("ij,ja,jb->iab", mask.astype(float), F, F)
    return gram + ridge * np.eye(F.shape[1])


@pytest.mark.parametrize("layout", ["dense", "coo", "csr"])
def test_masked_gram_sums_the_observed_outer_products(layout):
    mask, F, _ = _problem()
    G = _linalg.masked_gram(_sparse(mask, layout), torch.as_tensor(F), 0.5)
    np.testing.assert_allclose(G.numpy(), _reference_gram(mask, F, 0.5), atol=1e-12)


def test_masked_gram_ridge_per_feature_and_per_row():
    mask, F, _ = _problem()
    M, Ft = torch.as_tensor(mask.astype(float)), torch.as_tensor(F)
    per_feature = np.array([1.0, 2.0, 3.0])
    G = _linalg.masked_gram(M, Ft, torch.as_tensor(per_feature))
    ref = _reference_gram(mask, F, 0.0) + np.diag(per_feature)
    np.testing.assert_allclose(G.numpy(), ref, atol=1e-12)
    per_row = np.arange(mask.shape[0], dtype=float)[:, None]
    G = _linalg.masked_gram(M, Ft, torch.as_tensor(per_row))
    ref = _reference_gram(mask, F, 0.0) + per_row[:, :, None] * np.eye(3)
    np.testing.assert_allclose(G.numpy(), ref, atol=1e-12)
    # reusing the outer products gives the same matrices
    outer = _linalg.outer_products(Ft)
    assert torch.equal(
        _linalg.masked_gram(M, Ft, 0.1, outer=outer), _linalg.masked_gram(M, Ft, 0.1)
    )


def test_solve_spd_matches_a_direct_solve():
    rng = np.random.RandomState(1)
    A = rng.randn(5, 4, 4)
    G = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(4)
    B = rng.randn(5, 4)
    x = _linalg.solve_spd(torch.as_tensor(G), torch.as_tensor(B)).numpy()
    np.testing.assert_allclose(x, np.linalg.solve(G, B[..., None])[..., 0], rtol=1e-10)


def test_solve_spd_falls_back_to_least_squares_on_a_singular_matrix():
    G = np.zeros((2, 3, 3))
    G[0] = np.eye(3)
    G[1, :2, :2] = [[2.0, 1.0], [1.0, 2.0]]  # rank 2: Cholesky fails
    B = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 0.0]])
    x = _linalg.solve_spd(torch.as_tensor(G), torch.as_tensor(B)).numpy()
    assert np.all(np.isfinite(x))
    np.testing.assert_allclose(x[0], B[0], atol=1e-12)
    np.testing.assert_allclose(x[1], np.linalg.pinv(G[1]) @ B[1], atol=1e-10)


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_ridge_fold_in_solves_each_rows_masked_ridge_problem(layout):
    mask, F, Y = _problem(m=12, n=8, k=3)
    ridge = 0.3
    got = _linalg.ridge_fold_in(
        _sparse(mask, layout), torch.as_tensor(Y), torch.as_tensor(F), ridge
    ).numpy()
    for i in range(mask.shape[0]):
        Fo, yo = F[mask[i]], Y[i, mask[i]]
        ref = np.linalg.solve(Fo.T @ Fo + ridge * np.eye(3), Fo.T @ yo)
        np.testing.assert_allclose(got[i], ref, atol=1e-10)


def _low_rank(m, n, k, seed=0):
    rng = np.random.RandomState(seed)
    return rng.randn(m, k) @ rng.randn(k, n)


@pytest.mark.parametrize("shape", [(30, 12), (12, 30)])
def test_randomized_range_spans_an_exactly_low_rank_matrix(shape):
    A = torch.as_tensor(_low_rank(*shape, 3))
    Q = _linalg.randomized_range(A, A.T, 5, 2, make_generator(0))
    assert Q.shape == (shape[0], 5)
    np.testing.assert_allclose((Q.T @ Q).numpy(), np.eye(5), atol=1e-10)
    residual = A - Q @ (Q.T @ A)
    assert float(residual.abs().max()) < 1e-9 * float(A.abs().max())


def test_randomized_range_is_reproducible_and_leaves_the_global_stream_alone():
    A = torch.as_tensor(_low_rank(20, 10, 4))
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    Q1 = _linalg.randomized_range(A, A.T, 6, 1, make_generator(5))
    Q2 = _linalg.randomized_range(A, A.T, 6, 1, make_generator(5))
    assert torch.equal(Q1, Q2)
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("shape", [(25, 10), (10, 25)])
@pytest.mark.parametrize("sparse", [False, True])
def test_low_rank_svd_finds_the_singular_values(shape, sparse):
    X = _low_rank(*shape, 3, seed=2)
    A = torch.as_tensor(X)
    if sparse:
        A = A.to_sparse_coo()
    U, S, V = _linalg.low_rank_svd(A, 5, 3, make_generator(0))
    exact = np.linalg.svd(X, compute_uv=False)[:3]
    np.testing.assert_allclose(S[:3].numpy(), exact, rtol=1e-9)
    np.testing.assert_allclose(((U * S) @ V.T).numpy(), X, atol=1e-9)


def test_spectral_factors_are_the_balanced_truncated_svd():
    X = _low_rank(20, 15, 2, seed=3) + 1e-3 * np.random.RandomState(4).randn(20, 15)
    A = torch.as_tensor(X).to_sparse_csr()
    At = torch.as_tensor(X.T.copy()).to_sparse_csr()
    U, V = _linalg.spectral_factors(A, At, 2, 6, 3, make_generator(0))
    P, s, Qt = np.linalg.svd(X)
    best = (P[:, :2] * s[:2]) @ Qt[:2]
    np.testing.assert_allclose((U @ V.T).numpy(), best, atol=1e-8)
    # balanced: both factors carry the square roots of the singular values
    np.testing.assert_allclose((U.T @ U).numpy(), (V.T @ V).numpy(), atol=1e-8)
    np.testing.assert_allclose(np.diag((U.T @ U).numpy()), s[:2], rtol=1e-8)


@pytest.mark.parametrize("shape", [(40, 12), (12, 40)])
def test_low_rank_svd_with_a_given_transpose_is_bit_identical(shape):
    # Issue 14: a caller may pass A.mH (built without S.mH's clone of the
    # indices and values); the result must be the same bit for bit.
    X = _low_rank(*shape, 3, seed=5)
    X[np.random.RandomState(6).rand(*shape) < 0.3] = 0.0
    A = torch.as_tensor(X).to_sparse_coo()
    At = torch.sparse_coo_tensor(
        A._indices().flip(0), A._values(), shape[::-1], is_coalesced=False
    )
    ref = _linalg.low_rank_svd(A, 5, 3, make_generator(1))
    got = _linalg.low_rank_svd(A, 5, 3, make_generator(1), At=At)
    for a, b in zip(ref, got, strict=True):
        assert torch.equal(a, b)
