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

from ._gradient import GradientTrainedImputer
from ._linalg import solve_spd
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
# Entries per chunk when held-out entries are predicted without forming X.
_ENTRY_BLOCK = 1 << 20

#: dtype the factors of large matrices are trained in: float32 halves the
#: memory of the ``n_rows x n_cols`` buffers and the time of their products,
#: and its rounding (~1e-7 relative) is far below the errors of fits on such
#: tables. The fitted attributes, the fold-in and the outputs are float64.
TRAIN_DTYPE = torch.float32
#: matrices with at most this many entries (about 500 x 500; every matrix of
#: the papers' experiments) are trained in float64 (MPS: float32): there the
#: cost is small, and results stay those of the float64 code (the exact
#: low-rank recoveries of Arora et al.'s experiment reach relative errors of
#: ~3e-3).
FLOAT64_MAX_ENTRIES = 250_000


def train_dtype(shape: tuple[int, int], device: torch.device) -> torch.dtype:
    """float64 up to ``FLOAT64_MAX_ENTRIES`` entries (where supported), else float32."""
    if shape[0] * shape[1] <= FLOAT64_MAX_ENTRIES:
        return compute_dtype(device)
    return TRAIN_DTYPE


#: cap of the default inner width: the full width ``min(n_rows, n_cols)`` up to
#: here (every benchmark of the papers, 100 x 100 to 240 x 240 images, is
#: below it), so that a step costs O(n_rows · n_cols · 256), not O(n_rows ·
#: n_cols · min(n_rows, n_cols)), on large tables. A rank above 256 is not
#: recoverable by a full-batch deep linear fit in reasonable time anyway.
MAX_DEFAULT_WIDTH = 256


def _load_malloc_trim():
    """glibc's ``malloc_trim``, or None (other C libraries, other systems)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()
#: buffers of at least this many bytes make the fits release freed heap pages
#: every iteration (see :func:`release_free_memory`).
_TRIM_MIN_BYTES = 1 << 20


def release_free_memory() -> None:
    """Give freed heap pages back to the operating system (glibc only).

    glibc serves a freed block of up to 32 MB from its heap the next time
    instead of mapping it anew (its mmap threshold grows with each freed
    block), and the pages of freed heap blocks stay resident: a loop that
    allocates and frees such ``n_rows x n_cols`` buffers every step grows
    its resident memory by several times the input over a few steps
    without holding more. ``malloc_trim(0)`` returns those pages; a no-op
    where it does not exist.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


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


def predict_entries_chunked(
    factors: list[torch.Tensor], rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """``X[rows, cols]`` without gradients and without forming ``X``.

    The right product is formed once (``width x n_cols``); the entries are
    then dot products of row factors and right-product columns, computed in
    chunks of ``_ENTRY_BLOCK`` elements, so memory stays ``O(width · n_cols)``
    whatever the number of entries.
    """
    with torch.no_grad():
        right = right_product(factors)
        if right is None:
            return factors[0][rows, cols]
        left, right_t = factors[-1], right.T.contiguous()
        chunk = max(1, _ENTRY_BLOCK // max(1, left.shape[1]))
        parts = [
            (left[r] * right_t[c]).sum(dim=1)
            for r, c in zip(rows.split(chunk), cols.split(chunk), strict=True)
        ]
        return torch.cat(parts) if parts else left.new_zeros(0)


class _MaskedProductError(torch.autograd.Function):
    """``scale · ‖(left @ right − target)[~unused]‖²`` with one dense buffer.

    ``unused`` (bool) marks the entries outside the loss; ``target`` is zero
    there. Autograd on the plain
    expression keeps four ``n_rows x n_cols`` intermediates for the backward
    pass (the product, the residual, its square, the masked square); here the
    residual is formed in place in the product's buffer, which is then
    reused for the gradient ``2·scale·residual``.
    """

    @staticmethod
    def forward(ctx, left, right, target, unused, scale):
        resid = left @ right
        # In place and without a float copy of the mask (a multiplication by
        # a bool tensor would make one).
        resid.masked_fill_(unused, 0.0).sub_(target)
        loss = torch.linalg.vector_norm(resid).square() * scale
        ctx.save_for_backward(left, right)
        ctx.resid, ctx.scale = resid, scale
        return loss

    @staticmethod
    def backward(ctx, grad):
        left, right = ctx.saved_tensors
        resid, ctx.resid = ctx.resid, None
        resid.mul_(grad * (2.0 * ctx.scale))
        g_left = resid @ right.T if ctx.needs_input_grad[0] else None
        g_right = left.T @ resid if ctx.needs_input_grad[1] else None
        return g_left, g_right, None, None, None


def masked_error(
    factors: list[torch.Tensor],
    target: torch.Tensor,
    unused: torch.Tensor,
    scale: float,
    right: torch.Tensor | None = None,
) -> torch.Tensor:
    """``scale · Σ (X_ij − target_ij)²`` over the entries not ``unused``.

    ``X = product(factors)``; ``unused`` (bool) marks the entries outside the
    loss (missing or held out) and ``target`` holds the training values and
    zeros elsewhere. Memory: one ``n_rows x n_cols``
    buffer beyond ``target`` and ``unused`` (see
    :class:`_MaskedProductError`). ``right`` may pass an already formed
    right product.
    """
    if len(factors) == 1:
        return ((factors[0].masked_fill(unused, 0.0) - target) ** 2).sum() * scale
    if right is None:
        right = right_product(factors)
    return _MaskedProductError.apply(factors[-1], right, target, unused, scale)


def dense_targets(
    X: np.ndarray, keep: np.ndarray, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """The entries outside the loss (bool, ``~keep``) and the training values.

    The values are ``dtype`` with 0 outside ``keep``, built without a
    float64 temporary of the size of ``X`` when ``dtype`` is float32.
    """
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    target = np.zeros(X.shape, dtype=np_dtype)
    np.copyto(target, X, where=keep, casting="same_kind")
    return (
        torch.from_numpy(~keep).to(device),
        torch.from_numpy(target).to(device=device, dtype=dtype),
    )


def masked_mse(
    completion: np.ndarray, X: np.ndarray, mask: np.ndarray, block: int = 1 << 20
) -> float:
    """Mean squared difference on the entries of ``mask``, in row chunks."""
    step = max(1, block // max(1, X.shape[1]))
    total, count = 0.0, 0
    for start in range(0, X.shape[0], step):
        m = mask[start : start + step]
        d = completion[start : start + step][m] - X[start : start + step][m]
        total += float(d @ d)
        count += d.size
    return total / max(count, 1)


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
        # float64 on the CPU (MPS has no float64; the basis is small).
        factors = [w.detach().to(device="cpu", dtype=torch.float64) for w in factors]
        last = factors[-1]
        right = right_product(factors)
        # mode="r": the triangle only, no n_samples x width Q.
        _, triangle = torch.linalg.qr(last, mode="r")
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
        # Cholesky: the systems are SPD (noise_variance > 0). The batched LU
        # of torch.linalg.solve failed inside MKL on 2 threads (k = 256).
        z = solve_spd(gram, rhs.squeeze(-1))
        out[start:stop] = to_numpy(z @ B)
    return out


class DeepLinearImputer(GradientTrainedImputer):
    """Shared base of the imputers built on the deep linear product.

    Holds the parameters both methods share, the factor initialisation, the
    fitted factors and the inductive rule (fold-in against ``R``). Subclasses
    implement ``_fit`` and call :meth:`_store_factors` at its end.
    """

    _parameter_constraints: dict = {
        **GradientTrainedImputer._parameter_constraints,
        "depth": [Interval(numbers.Integral, 1, None, closed="left")],
        "width": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "init_scale": [Interval(numbers.Real, 0, None, closed="neither")],
    }

    # Standardised columns make one set of defaults (init_scale, learning
    # rate, tol) fit tables with mixed column scales, images and ratings.
    _scaling = "standard"

    #: every this many iterations :meth:`_monitor` sees the current product
    #: (None: never). Benchmarks override both to draw error-vs-iteration.
    _monitor_interval: int | None = None

    def _monitor(self, n_iter: int, completion: torch.Tensor) -> None:
        """Hook called with the current product (scaled units); no-op here."""

    def _make_factors(self, shape, generator, width=None) -> list[torch.Tensor]:
        device = self._device
        width = resolve_width(*shape, self.width if width is None else width)
        return init_factors(
            *shape,
            self.depth,
            width,
            self.init_scale,
            generator=generator,
            device=device,
            dtype=train_dtype(shape, device),
        )

    def _monitor_hook(self, factors, shape=None):
        """An ``on_epoch_start`` callback for :func:`train`, or None.

        It calls :meth:`_monitor` every ``_monitor_interval`` iterations and,
        when ``shape`` (rows, columns) makes the dense buffers large, hands
        freed heap memory back to the system (:func:`release_free_memory`).
        """
        interval = self._monitor_interval
        trim = shape is not None and 4 * shape[0] * shape[1] >= _TRIM_MIN_BYTES
        if not interval and not trim:
            return None

        def hook(epoch: int) -> None:
            if trim:
                release_free_memory()
            if interval and epoch % interval == 0:
                with torch.no_grad():
                    self._monitor(epoch, product(factors))

        return hook

    def _store_factors(self, factors, X, mask) -> np.ndarray:
        """Set the fitted factors and the fold-in basis; return the completion.

        Call it after the training buffers are released: it forms the
        completion (float64, the size of ``X``).
        """
        release_free_memory()
        with torch.no_grad():
            completion = to_numpy(product(factors))
        residual = masked_mse(completion, X, mask)
        # The basis (float64 copies of the factors, a QR) before factors_,
        # so that the two float64 copies of W[L-1] never coexist.
        self.components_, self.noise_variance_ = fold_in_basis(factors, residual)
        self.factors_ = [to_numpy(w) for w in factors]
        return completion

    def _transform(self, X: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return fold_in(self.components_, self.noise_variance_, X, mask, self._device)
