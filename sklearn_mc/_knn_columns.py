"""KNNImputer with ``axis="features"``: the neighbours of a column are columns.

The training columns are standardised (observed mean 0, standard deviation 1)
and :func:`column_ratios` computes the nan-euclidean distances between them
at fit; :func:`impute_from_columns` completes a missing entry ``(i, j)`` from
row ``i``'s values in the columns nearest to ``j`` that it observes.
"""

from __future__ import annotations

import numpy as np
import torch

from . import _knn_rows as _rows
from ._progress import progress
from ._torch import compute_dtype, to_numpy, to_tensor


def column_ratios(Z: np.ndarray, mask: np.ndarray, device: torch.device) -> np.ndarray:
    """Mean squared difference over common rows between all columns."""
    dtype = compute_dtype(device)
    Zt = to_tensor(Z.T, device, dtype)
    Mt = to_tensor(mask.T, device).to(dtype)
    n_cols = Zt.shape[0]
    chunk = _rows.chunk_size(n_cols, n_cols)
    out = np.empty((n_cols, n_cols))
    for start in range(0, n_cols, chunk):
        sl = slice(start, start + chunk)
        out[sl] = to_numpy(_exact_ratios(Zt[sl], Mt[sl], Zt, Mt))
    return out


def impute_from_columns(
    X: np.ndarray,
    mask: np.ndarray,
    rows: np.ndarray,
    out: np.ndarray,
    *,
    col_mean: np.ndarray,
    col_std: np.ndarray,
    col_ratio: np.ndarray,
    n_neighbors: int,
    weights: str,
    device: torch.device,
    chunk_rows: int | None = None,
    verbose: int = 0,
) -> None:
    """Complete the rows ``rows`` of ``X`` in ``out`` from their nearest columns.

    ``col_mean``, ``col_std`` are the training columns' statistics and
    ``col_ratio`` their :func:`column_ratios` (standardised units);
    ``chunk_rows`` (None: by the working memory) bounds the rows per chunk.
    """
    dtype = compute_dtype(device)
    n_features = X.shape[1]
    mean = to_tensor(col_mean, device, dtype)
    std = to_tensor(col_std, device, dtype)
    col_ratio = to_tensor(col_ratio, device, dtype)
    k = min(n_neighbors, n_features)
    chunk = chunk_rows or _rows.chunk_size(4 * n_features, len(rows))
    bar = progress(len(rows), verbose, "KNNImputer")
    for start in range(0, len(rows), chunk):
        idx = rows[start : start + chunk]
        mZ = to_tensor(mask[idx], device)
        Z = (to_tensor(np.nan_to_num(X[idx]), device, dtype) - mean) / std
        est = torch.zeros_like(Z)
        missing = ~mZ
        for j in torch.nonzero(missing.any(0)).flatten().tolist():
            receivers = torch.nonzero(missing[:, j]).flatten()
            dist = torch.where(mZ[receivers], col_ratio[j], torch.inf)
            near, where = _rows.smallest(dist, k)[:2]
            z = _neighbour_mean(
                near,
                torch.isfinite(near),
                Z[receivers].gather(1, where),
                weights,
            )
            # No observed column at a defined distance: the column mean.
            est[receivers, j] = torch.nan_to_num(z, nan=0.0)
        est = est * std + mean
        out[idx] = np.where(mask[idx], out[idx], to_numpy(est))
        bar.update(len(idx))
    bar.close()


def _exact_ratios(A, mA, B, mB):
    """Nan-euclidean ``sum((a - b)²) / n_common`` per pair; inf when none.

    ``A``, ``B`` are zero-filled, ``mA``, ``mB`` their masks (float). The
    factor ``n_features`` of the distance is left out: it changes neither
    the ranking nor the normalised ``1 / d`` weights.
    """
    d2 = torch.cat([A * A, mA, A], 1) @ torch.cat([mB, B * B, -2 * B], 1).T
    d2.clamp_(min=0)
    common = mA @ mB.T
    return torch.where(common > 0, d2 / common, torch.inf)


def _neighbour_mean(ratio, selected, values, weights):
    """Uniform or ``1 / d`` weighted mean of the selected neighbours (last dim).

    ``ratio`` is the squared distance up to a constant factor, which cancels
    in the normalised weights. As in scikit-learn, neighbours at distance 0
    take all the weight when there are any. NaN where none is selected.
    """
    if weights == "uniform":
        w = selected.to(values.dtype)
    else:
        zero = selected & (ratio == 0)
        inverse = torch.where(selected & (ratio > 0), ratio.rsqrt(), 0.0)
        w = torch.where(zero.any(-1, keepdim=True), zero.to(values.dtype), inverse)
    return (w * values).sum(-1) / w.sum(-1)
