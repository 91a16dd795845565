"""Tests of AIR-Net's learned Laplacians: the authors' parameterisation and
the Dirichlet energies, dense and factored."""

from __future__ import annotations

import numpy as np
import torch

from sklearn_mc._air_net_laplacian import (
    affinity,
    dirichlet_energy,
    dirichlet_energy_factored,
    laplacian,
)


def test_affinity_follows_the_authors_recipe():
    free = torch.randn(
        6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    a = affinity(free)
    a1 = torch.softmax(-free, dim=1)  # softmin, each row sums to one
    torch.testing.assert_close(a, (a1 + a1.T) / 2)
    lap = laplacian(free)
    np.testing.assert_allclose(lap, lap.T)
    np.testing.assert_allclose(lap.sum(axis=1), 0.0, atol=1e-12)
    assert (lap - np.diag(np.diag(lap)) <= 0).all()
    # Zero-diagonal adjacency: L's diagonal is the off-diagonal row mass.
    off = a.numpy() - np.diag(np.diag(a.numpy()))
    np.testing.assert_allclose(np.diag(lap), off.sum(axis=1))


def test_dirichlet_energy_matches_pairwise_form_and_trace():
    gen = torch.Generator().manual_seed(1)
    free = torch.randn(7, 7, dtype=torch.float64, generator=gen)
    Y = torch.randn(7, 4, dtype=torch.float64, generator=gen)
    a = affinity(free)
    diffs = ((Y[:, None, :] - Y[None, :, :]) ** 2).sum(-1)
    pairwise = 0.5 * (a * diffs).sum()
    torch.testing.assert_close(dirichlet_energy(a, Y), pairwise)
    lap = torch.as_tensor(laplacian(free))
    torch.testing.assert_close(dirichlet_energy(a, Y), torch.trace(Y.T @ lap @ Y))


def test_factored_traces_equal_the_dense_ones():
    gen = torch.Generator().manual_seed(3)
    left = torch.randn(9, 3, dtype=torch.float64, generator=gen)
    right = torch.randn(3, 7, dtype=torch.float64, generator=gen)
    a_r = affinity(torch.randn(9, 9, dtype=torch.float64, generator=gen))
    a_c = affinity(torch.randn(7, 7, dtype=torch.float64, generator=gen))
    X = left @ right
    torch.testing.assert_close(
        dirichlet_energy_factored(a_r, left, right @ right.T), dirichlet_energy(a_r, X)
    )
    torch.testing.assert_close(
        dirichlet_energy_factored(a_c, right.T, left.T @ left),
        dirichlet_energy(a_c, X.T),
    )
