"""Completion of new rows, new columns and their crossing by a fitted DMF.

Nguyen, Tsiligianni and Deligiannis, "Extendable neural matrix completion"
(ICASSP 2018), Fig. 2: a trained DMF encodes a new row from its entries over
the training columns (area II), a new column from its entries over the
training rows (area III), and predicts the new rows' entries on the new
columns from the two new factors (area IV), without retraining.
:func:`complete_blocks` is the body of :meth:`~sklearn_mc.DMFImputer.complete`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from sklearn.utils.validation import check_array, check_is_fitted

from ._dmf_scaling import RangeScaling, new_column_scaling
from ._torch import to_tensor
from ._validation import _is_nan


class DMFCompletion(NamedTuple):
    """Completed blocks returned by :meth:`DMFImputer.complete`.

    Attributes
    ----------
    new_rows : ndarray of shape (n_new_rows, n_features_out) or None
        Area II: the new rows completed over the training columns.
    new_cols : ndarray of shape (n_train_rows, n_new_cols) or None
        Area III: the training rows completed over the new columns.
    new_both : ndarray of shape (n_new_rows, n_new_cols) or None
        Area IV: the new rows over the new columns.
    """

    new_rows: np.ndarray | None
    new_cols: np.ndarray | None
    new_both: np.ndarray | None


def complete_blocks(est, X_new_rows=None, X_new_cols=None, X_new_both=None):
    """The blocks of :meth:`DMFImputer.complete` (see there), as a DMFCompletion."""
    check_is_fitted(est)
    if X_new_both is not None and (X_new_rows is None or X_new_cols is None):
        raise ValueError("X_new_both needs both X_new_rows and X_new_cols.")
    U_new = V_new = rows_out = cols_out = both_out = None
    with torch.no_grad():
        if X_new_rows is not None:
            X = est._validate_input(X_new_rows, reset=False)[:, est._valid_mask]
            mask = ~np.isnan(X)
            U_new = est._encode(est.row_branch_, X, mask, scale=True)
            V = to_tensor(est.column_factors_, U_new.device)
            rows_out = est._finish(X, mask, est._output(U_new, V))
        if X_new_cols is not None:
            Y = _check_new(est, X_new_cols, "X_new_cols")
            n_train = est.row_factors_.shape[0]
            if Y.shape[0] != n_train:
                raise ValueError(
                    f"X_new_cols has {Y.shape[0]} rows; it must hold the new "
                    f"columns over the {n_train} training rows (in their order)."
                )
            mask = ~np.isnan(Y)
            fitted = RangeScaling(
                est.scaling_, est._scale_shift, est._scale_factor, est._default_half
            )
            shift, factor = new_column_scaling(Y, mask, fitted)
            V_new = est._encode(
                est.col_branch_, np.where(mask, (Y - shift) / factor, 0).T
            )
            U = to_tensor(est.row_factors_, V_new.device)
            out = est._output(U, V_new, blend=False)
            cols_out = _finish_block(est, Y, mask, out, shift, factor)
        if U_new is not None and V_new is not None:
            shape = (U_new.shape[0], V_new.shape[0])
            if X_new_both is None:
                Z = np.full(shape, np.nan)
            else:
                Z = _check_new(est, X_new_both, "X_new_both")
                if Z.shape != shape:
                    raise ValueError(
                        f"X_new_both has shape {Z.shape}, expected {shape} "
                        "(new rows x new columns)."
                    )
            out = est._output(U_new, V_new, blend=False)
            both_out = _finish_block(est, Z, ~np.isnan(Z), out, shift, factor)
    return DMFCompletion(rows_out, cols_out, both_out)


def _check_new(est, X, name):
    """``X`` as float64 with NaN for ``missing_values`` (a copy)."""
    X = check_array(
        X,
        dtype=np.float64,
        ensure_all_finite="allow-nan" if _is_nan(est.missing_values) else True,
        copy=True,
        input_name=name,
    )
    if not _is_nan(est.missing_values):
        X[X == est.missing_values] = np.nan
    return X


def _finish_block(est, X, mask, completion, shift, factor):
    """Unscale a block over new columns, snap to the levels, keep observed."""
    out = completion * factor + shift
    if est.levels_ is not None:
        out = est._snap(out)
    out[mask] = X[mask]
    if not np.isfinite(out).all():
        raise RuntimeError("DMFImputer produced non-finite values for missing entries.")
    return out
