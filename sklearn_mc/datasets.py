"""Synthetic matrices and missingness masks (no downloads, ever)."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["make_low_rank", "make_mask"]


def make_low_rank(
    n_rows: int,
    n_cols: int,
    rank: int,
    *,
    noise: float = 0.0,
    random_state=None,
    return_factors: bool = False,
):
    """A random low-rank matrix ``X = U @ V.T`` with U, V ~ N(0, 1), as in the seeds.

    Parameters
    ----------
    n_rows, n_cols : int
        Shape of ``X``.
    rank : int
        Inner dimension of the factors (the rank of ``X`` almost surely).
    noise : float, default=0.0
        Standard deviation of i.i.d. Gaussian noise added to every entry.
    random_state : int, RandomState instance or None, default=None
        Seed.
    return_factors : bool, default=False
        Also return ``U`` and ``V``.

    Returns
    -------
    X : ndarray of shape (n_rows, n_cols)
        Each entry has variance ``rank`` (plus ``noise**2``).
    U, V : ndarray
        The factors, only if ``return_factors``.

    Examples
    --------
    >>> from sklearn_mc.datasets import make_low_rank
    >>> X = make_low_rank(50, 40, 3, random_state=0)
    >>> X.shape, int(np.linalg.matrix_rank(X))
    ((50, 40), 3)
    """
    for name, value in (("n_rows", n_rows), ("n_cols", n_cols), ("rank", rank)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}.")
    rng = check_random_state(random_state)
    U = rng.standard_normal((n_rows, rank))
    V = rng.standard_normal((n_cols, rank))
    X = U @ V.T
    if noise:
        X = X + noise * rng.standard_normal(X.shape)
    return (X, U, V) if return_factors else X


def make_mask(
    shape: tuple[int, int],
    kind: str = "random",
    *,
    missing_rate: float | None = None,
    n_patches: int = 2,
    patch_size: int | None = None,
    random_state=None,
) -> np.ndarray:
    """A missingness mask: True marks a missing entry.

    The three patterns of the AIR-Net paper:

    ``"random"``
        each entry missing independently with probability ``missing_rate``
        (default 0.3);
    ``"patch"``
        ``n_patches`` square blocks of side ``patch_size`` (default: 13.4 % of
        the shorter side, which on 240 x 240 gives the paper's ~3.6 %);
    ``"texture"``
        thin random pen strokes, like handwriting laid over an image, until
        ``missing_rate`` (default 0.095, the paper's ~9.5 %) is covered.

    Parameters
    ----------
    shape : tuple of int
        ``(n_rows, n_cols)``.
    kind : {"random", "patch", "texture"}, default="random"
        The pattern.
    missing_rate : float or None, default=None
        Target share of missing entries ("random", "texture").
    n_patches : int, default=2
        Number of blocks ("patch").
    patch_size : int or None, default=None
        Side of each block ("patch").
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    mask : ndarray of bool, shape ``shape``

    Examples
    --------
    >>> from sklearn_mc.datasets import make_mask
    >>> mask = make_mask((100, 100), "random", missing_rate=0.3, random_state=0)
    >>> round(float(mask.mean()), 2)
    0.3
    """
    n_rows, n_cols = (int(s) for s in shape)
    if n_rows < 1 or n_cols < 1:
        raise ValueError(f"shape must be two positive integers, got {shape!r}.")
    if missing_rate is not None and not 0 <= missing_rate < 1:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate!r}.")
    rng = check_random_state(random_state)
    if kind == "random":
        rate = 0.3 if missing_rate is None else missing_rate
        return rng.random_sample((n_rows, n_cols)) < rate
    if kind == "patch":
        return _patch_mask(n_rows, n_cols, n_patches, patch_size, rng)
    if kind == "texture":
        rate = 0.095 if missing_rate is None else missing_rate
        return _texture_mask(n_rows, n_cols, rate, rng)
    raise ValueError(f"kind must be 'random', 'patch' or 'texture', got {kind!r}.")


def _patch_mask(n_rows, n_cols, n_patches, patch_size, rng):
    if patch_size is None:
        patch_size = max(1, round(0.134 * min(n_rows, n_cols)))
    if not 1 <= patch_size <= min(n_rows, n_cols):
        raise ValueError(
            f"patch_size must be between 1 and {min(n_rows, n_cols)}, "
            f"got {patch_size!r}."
        )
    mask = np.zeros((n_rows, n_cols), dtype=bool)
    for _ in range(n_patches):
        top = rng.randint(0, n_rows - patch_size + 1)
        left = rng.randint(0, n_cols - patch_size + 1)
        mask[top : top + patch_size, left : left + patch_size] = True
    return mask


def _texture_mask(n_rows, n_cols, rate, rng):
    """Smooth random strokes (quadratic Bezier curves) about 1-2 pixels wide."""
    mask = np.zeros((n_rows, n_cols), dtype=bool)
    size = min(n_rows, n_cols)
    t = np.linspace(0.0, 1.0, 4 * size)[:, None]
    while mask.mean() < rate:
        start = rng.uniform((0, 0), (n_rows, n_cols))
        span = size * rng.uniform(0.05, 0.25)
        ctrl = start + rng.uniform(-span, span, 2)
        end = start + rng.uniform(-span, span, 2)
        curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * ctrl + t**2 * end
        width = rng.randint(1, 3)
        for dr in range(width):
            for dc in range(width):
                r = np.clip(np.round(curve[:, 0]).astype(int) + dr, 0, n_rows - 1)
                c = np.clip(np.round(curve[:, 1]).astype(int) + dc, 0, n_cols - 1)
                mask[r, c] = True
    return mask
