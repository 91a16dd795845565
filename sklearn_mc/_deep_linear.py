"""The deep linear parameterisation ``X = W[L-1] ... W[1] W[0]`` and its fold-in.

Shared by :class:`~sklearn_mc.DeepMFImputer` (plain deep matrix factorisation,
Arora et al. 2019) and :class:`~sklearn_mc.AIRNetImputer` (the same product
plus adaptive Laplacian regularisers). Conventions:

* ``W[0]`` has shape ``(width, n_features)``, the inner factors
  ``(width, width)`` and ``W[L-1]`` ``(n_samples, width)``;
* the *right product* ``R = W[L-2] ... W[0]`` (``width x n_features``) holds
  what the model learned about the columns; the last factor ``W[L-1]`` holds
  one row factor per training sample;
* new rows are *folded in* against ``R``: each row's factor is the posterior
  mean of a Gaussian model whose prior is the spread of the training rows'
  factors (probabilistic PCA on the learned product), fitted on the row's
  observed entries only.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.utils._param_validation import Interval

from ._base import DEVICE_CONSTRAINT, BaseMatrixImputer
from ._torch import compute_dtype, to_numpy, to_tensor

# Directions of the learned row space weaker than this (relative to the
# strongest) carry only initialisation noise and are dropped from the basis.
_BASIS_RTOL = 1e-6
# Floor of the fold-in noise variance, relative to the mean prior variance of
# an entry, so that exact (noise-free) fits still give well-posed solves.
_MIN_NOISE = 1e-6
# Cap on the elements of the (rows x basis x features) block of one fold-in
# chunk: bounds the memory of transform on many rows.
_FOLD_IN_BLOCK = 1 << 22


#: cap of the default inner width: the full width ``min(n_rows, n_cols)`` up to
#: here (every benchmark of the papers, 100 x 100 to 240 x 240 images, is
#: below it), so that a step costs O(n_rows · n_cols · 256), not O(n_rows ·
#: n_cols · min(n_rows, n_cols)), on large tables. A rank above 256 is not
#: recoverable by a full-batch deep linear fit in reasonable time anyway.
MAX_DEFAULT_WIDTH = 256


def resolve_width(n_rows: int, n_cols: int, width: int | None) -> int:
    """Inner width: ``min(n_rows, n_cols, 256)`` by default (no rank to choose)."""
    if width is None:
        return min(n_rows, n_cols, MAX_DEFAULT_WIDTH)
    return int(width)


def init_factors(
    n_rows: int,
    n_cols: int,
    depth: int,
    width: int,
    init_scale: float,
    *,
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype,
) -> list[torch.Tensor]:
    """Small Gaussian factors ``[W[0], ..., W[L-1]]``, balanced in expectation.

    Entry variances are chosen so that ``E[W[l+1]ᵀ W[l+1]] = E[W[l] W[l]ᵀ]``
    (Arora et al.'s balancedness, which their analysis assumes and which a
    near-zero Gaussian start satisfies up to a negligible error) and so that
    the entries of the initial product have standard deviation
    ``init_scale``. Draws use the CPU ``generator`` (bit-reproducible).
    """
    if depth == 1:
        stds = [init_scale]
        dims = [n_cols, n_rows]
    else:
        dims = [n_cols] + [width] * (depth - 1) + [n_rows]
        # Product variance = c^(2L) * width / (n_rows * n_cols) for these stds.
        c = (init_scale**2 * n_rows * n_cols / width) ** (1.0 / (2 * depth))
        stds = [c / np.sqrt(dims[0])]
        stds += [c / np.sqrt(width)] * (depth - 2)
        stds += [c / np.sqrt(n_rows)]
    factors = []
    for layer, std in enumerate(stds):
        shape = (dims[layer + 1], dims[layer])
        w = torch.randn(shape, generator=generator, dtype=torch.float64) * std
        factors.append(w.to(device=device, dtype=dtype).requires_grad_(True))
    return factors


def right_product(factors: list[torch.Tensor]) -> torch.Tensor | None:
    """``R = W[L-2] ... W[0]``, or None for depth 1 (no right product)."""
    if len(factors) == 1:
        return None
    right = factors[0]
    for w in factors[1:-1]:
        right = w @ right
    return right


def product(factors: list[torch.Tensor]) -> torch.Tensor:
    """The completed matrix ``X = W[L-1] R`` (right to left: cheapest for tall X)."""
    right = right_product(factors)
    return factors[-1] if right is None else factors[-1] @ right


def entries(
    factors: list[torch.Tensor], rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """``X[rows, cols]`` without forming ``X`` (mini-batches of entries)."""
    n_rows, width = factors[-1].shape
    if len(factors) == 1 or rows.numel() * width >= n_rows * factors[0].shape[1]:
        # Many entries: forming X is cheaper than a width-long dot per entry.
        return product(factors)[rows, cols]
    left = factors[-1][rows]
    for w in reversed(factors[1:-1]):
        left = left @ w
    return (left * factors[0][:, cols].T).sum(dim=1)


def fold_in_basis(
    factors: list[torch.Tensor], residual_variance: float
) -> tuple[np.ndarray, float]:
    """Basis ``B`` and noise variance for folding rows in against ``R``.

    With ``W[L-1] = Q T`` (thin QR), ``B = T R / sqrt(n_samples)`` satisfies
    ``Bᵀ B = Xᵀ X / n_samples``: a row modelled as ``x = z B + noise`` with
    ``z ~ N(0, I)`` has the second moments of the training rows. ``B`` is
    reduced to its significant directions by an SVD (``k x n_features``).
    """
    with torch.no_grad():
        last = factors[-1]
        right = right_product(factors)
        _, triangle = torch.linalg.qr(last, mode="reduced")
        # Depth 1 has no right product: X = W[0] = Q T already.
        basis = triangle if right is None else triangle @ right
        basis = basis / np.sqrt(last.shape[0])
        _, svals, vh = torch.linalg.svd(basis, full_matrices=False)
        # The first singular value is kept even when all are zero.
        keep = svals > _BASIS_RTOL * svals[0]
        keep[0] = True
        basis = svals[keep, None] * vh[keep]
        prior = float((basis**2).sum() / basis.shape[1])
    noise = max(float(residual_variance), _MIN_NOISE * prior, 1e-300)
    return to_numpy(basis), noise


def fold_in(
    basis: np.ndarray,
    noise_variance: float,
    X: np.ndarray,
    mask: np.ndarray,
    device: torch.device,
) -> np.ndarray:
    """Complete each row of ``X`` from its observed entries (rows independent).

    Solves, for every row ``x`` with observed set ``O``, the ridge problem
    ``min_z ‖x_O − (z B)_O‖² + noise_variance · ‖z‖²`` (posterior mean of
    ``z``) in batched form and returns ``z B``. Rows without observations get
    the prior mean, 0.
    """
    dtype = compute_dtype(device)
    B = to_tensor(basis, device, dtype)
    k, n = B.shape
    out = np.empty(X.shape, dtype=np.float64)
    chunk = max(1, _FOLD_IN_BLOCK // max(1, k * n))
    eye = noise_variance * torch.eye(k, dtype=dtype, device=device)
    for start in range(0, X.shape[0], chunk):
        stop = min(start + chunk, X.shape[0])
        m = to_tensor(mask[start:stop].astype(np.float64), device, dtype)
        x = to_tensor(np.where(mask[start:stop], X[start:stop], 0.0), device, dtype)
        gram = torch.matmul(B.unsqueeze(0) * m.unsqueeze(1), B.T) + eye
        rhs = (x @ B.T).unsqueeze(-1)
        z = torch.linalg.solve(gram, rhs).squeeze(-1)
        out[start:stop] = to_numpy(z @ B)
    return out


class DeepLinearImputer(BaseMatrixImputer):
    """Shared base of the imputers built on the deep linear product.

    Holds the parameters both methods share, the factor initialisation, the
    fitted factors and the inductive rule (fold-in against ``R``). Subclasses
    implement ``_fit`` and call :meth:`_store_factors` at its end.
    """

    _parameter_constraints: dict = {
        **BaseMatrixImputer._parameter_constraints,
        "depth": [Interval(numbers.Integral, 1, None, closed="left")],
        "width": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "init_scale": [Interval(numbers.Real, 0, None, closed="neither")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "device": DEVICE_CONSTRAINT,
    }

    # Standardised columns make one set of defaults (init_scale, learning
    # rate, tol) fit tables with mixed column scales, images and ratings.
    _scaling = "standard"

    #: every this many iterations :meth:`_monitor` sees the current product
    #: (None: never). Benchmarks override both to draw error-vs-iteration.
    _monitor_interval: int | None = None

    def _monitor(self, n_iter: int, completion: torch.Tensor) -> None:
        """Hook called with the current product (scaled units); no-op here."""

    def _make_factors(self, shape, generator) -> list[torch.Tensor]:
        device = self._device
        width = resolve_width(*shape, self.width)
        return init_factors(
            *shape,
            self.depth,
            width,
            self.init_scale,
            generator=generator,
            device=device,
            dtype=compute_dtype(device),
        )

    def _monitor_hook(self, factors):
        """An ``on_epoch_start`` callback for :func:`train`, or None."""
        interval = self._monitor_interval
        if not interval:
            return None

        def hook(epoch: int) -> None:
            if epoch % interval == 0:
                with torch.no_grad():
                    self._monitor(epoch, product(factors))

        return hook

    def _store_factors(self, factors, X, mask) -> np.ndarray:
        """Set the fitted factors and the fold-in basis; return the completion."""
        with torch.no_grad():
            completion = to_numpy(product(factors))
        residual = float(np.mean((completion[mask] - X[mask]) ** 2))
        self.factors_ = [to_numpy(w) for w in factors]
        self.components_, self.noise_variance_ = fold_in_basis(factors, residual)
        return completion

    def _transform(self, X: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return fold_in(self.components_, self.noise_variance_, X, mask, self._device)
