"""Missingness masks: the AIR-Net paper's patterns and HyperImpute's MAR / MNAR.

:func:`make_mask` is public as :func:`sklearn_mc.datasets.make_mask`.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["make_mask"]


def make_mask(
    shape: tuple[int, int],
    kind: str = "random",
    *,
    missing_rate: float | None = None,
    n_patches: int = 2,
    patch_size: int | None = None,
    X=None,
    observed_fraction: float = 0.3,
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
        ``missing_rate`` (default 0.095, the paper's ~9.5 %) is covered;

    and the three data-dependent patterns of the HyperImpute benchmark
    (Jarrett et al., "HyperImpute: Generalized Iterative Imputation with
    Automatic Model Selection", ICML 2022, after the R-miss-tastic recipes),
    which need the complete table ``X``. In each, a logistic model with
    random positive weights, scaled so that its linear part has unit
    variance, gives every entry its probability of being missing, and each
    column's intercept is solved for so that the expected share of missing
    entries is ``missing_rate`` (default 0.3) **over the whole table**:

    ``"mar"``
        missing at random: a random ``observed_fraction`` of the columns (at
        least one, not all) is always observed; each other column is missing
        with the logistic probability of those always-observed values (its
        own rate is ``missing_rate * n_cols / n_masked_cols``, which must be
        below 1; HyperImpute's ``MAR_mask`` sets that per-column rate
        instead);
    ``"mnar"``
        missing not at random: a random ``observed_fraction`` of the columns
        are the logistic model's inputs and are themselves missing completely
        at random; each other column is missing with the logistic
        probability of the inputs' values, seen or not (HyperImpute's
        ``MNAR_mask_logistic``);
    ``"mnar_self"``
        self-masking: each entry is missing with a logistic probability of
        its own value, larger values more often (HyperImpute's
        ``MNAR_self_mask_logistic``).

    Parameters
    ----------
    shape : tuple of int
        ``(n_rows, n_cols)``.
    kind : {"random", "patch", "texture", "mar", "mnar", "mnar_self"}, \
            default="random"
        The pattern.
    missing_rate : float or None, default=None
        Target share of missing entries (all kinds but "patch").
    n_patches : int, default=2
        Number of blocks ("patch").
    patch_size : int or None, default=None
        Side of each block ("patch").
    X : array-like of shape ``shape`` or None, default=None
        The complete table the data-dependent kinds ("mar", "mnar",
        "mnar_self") draw their mask from; finite values.
    observed_fraction : float in (0, 1), default=0.3
        Share of the columns that are always observed ("mar") or that are
        the logistic model's inputs ("mnar").
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    mask : ndarray of bool, shape ``shape``

    Examples
    --------
    >>> from sklearn_mc.datasets import make_mask
    >>> mask = make_mask((100, 100), "random", missing_rate=0.3, random_state=0)
    >>> bool(abs(mask.mean() - 0.3) < 0.02)
    True
    >>> import numpy as np
    >>> X = np.random.RandomState(0).standard_normal((2000, 10))
    >>> mar = make_mask(X.shape, "mar", X=X, missing_rate=0.2, random_state=0)
    >>> bool(abs(mar.mean() - 0.2) < 0.02), int((~mar.any(axis=0)).sum())
    (True, 3)
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
    if kind in ("mar", "mnar", "mnar_self"):
        rate = 0.3 if missing_rate is None else missing_rate
        return _logistic_mask((n_rows, n_cols), kind, rate, X, observed_fraction, rng)
    raise ValueError(
        "kind must be 'random', 'patch', 'texture', 'mar', 'mnar' or "
        f"'mnar_self', got {kind!r}."
    )


def _logistic_mask(shape, kind, rate, X, observed_fraction, rng):
    """The HyperImpute benchmark's MAR / MNAR masks (see :func:`make_mask`)."""
    if X is None:
        raise ValueError(f"kind={kind!r} draws its mask from the data: pass X.")
    X = np.asarray(X, dtype=np.float64)
    if X.shape != shape:
        raise ValueError(f"X has shape {X.shape}, but shape is {shape}.")
    if not np.isfinite(X).all():
        raise ValueError(
            f"kind={kind!r} needs a complete table X (no NaN or infinity)."
        )
    if not 0 < observed_fraction < 1:
        raise ValueError(
            f"observed_fraction must be in (0, 1), got {observed_fraction!r}."
        )
    n_rows, n_cols = shape
    std = X.std(axis=0)
    Z = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    mask = np.zeros(shape, dtype=bool)
    if kind == "mnar_self":
        # one positive slope per column: W x_j has unit variance
        logits = Z * np.where(std > 0, 1.0, 0.0)
        mask[:] = rng.random_sample(shape) < _logistic_probabilities(logits, rate)
        return mask
    if n_cols < 2:
        raise ValueError(f"kind={kind!r} needs at least two columns, got {n_cols}.")
    n_inputs = min(max(int(observed_fraction * n_cols), 1), n_cols - 1)
    inputs = np.sort(rng.choice(n_cols, n_inputs, replace=False))
    masked = np.setdiff1d(np.arange(n_cols), inputs)
    col_rate = rate * n_cols / masked.size if kind == "mar" else rate
    if col_rate >= 1:
        raise ValueError(
            f"kind='mar' with missing_rate={rate} leaves {masked.size} of {n_cols} "
            f"columns to hide it in, a per-column rate of {col_rate:.2f} >= 1: "
            "lower missing_rate or observed_fraction."
        )
    weights = rng.random_sample((n_inputs, masked.size))
    logits = Z[:, inputs] @ weights
    scale = logits.std(axis=0)
    logits /= np.where(scale > 0, scale, 1.0)
    probabilities = _logistic_probabilities(logits, col_rate)
    mask[:, masked] = rng.random_sample((n_rows, masked.size)) < probabilities
    if kind == "mnar":
        # the inputs are hidden at random, so the others depend on hidden values
        mask[:, inputs] = rng.random_sample((n_rows, n_inputs)) < rate
    return mask


def _logistic_probabilities(logits: np.ndarray, rate: float) -> np.ndarray:
    """``expit(logits + b)``, one ``b`` per column so that it averages ``rate``."""
    from scipy.special import expit

    lo = np.full(logits.shape[1], -50.0)
    hi = np.full(logits.shape[1], 50.0)
    for _ in range(60):  # bisection, all columns at once
        mid = (lo + hi) / 2
        low = expit(logits + mid).mean(axis=0) < rate
        lo = np.where(low, mid, lo)
        hi = np.where(low, hi, mid)
    return expit(logits + (lo + hi) / 2)


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
