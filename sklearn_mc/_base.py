"""The estimator contract shared by every sklearn_mc imputer.

:class:`BaseMatrixImputer` owns everything that is not a method's own
mathematics: input validation (its checks in :mod:`sklearn_mc._validation`),
the missing-value mask, all-missing columns, optional scaling, device
resolution, seeding, putting observed entries back, the finiteness guarantee,
``score`` and feature names. A method implements two hooks on clean float64
arrays:

``_fit(X, mask)``
    learn from ``X`` (NaN where ``mask`` is False) and return the completion of
    ``X`` itself (transductive), or ``None`` to have ``_transform`` produce it;
``_transform(X, mask)``
    complete rows by the method's inductive rule, each row on its own.
"""

from __future__ import annotations

import copy
import numbers
import os
import sys
import warnings
from abc import ABCMeta, abstractmethod

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import MissingIndicator
from sklearn.utils._param_validation import Interval, MissingValues, StrOptions
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from . import _sparse_path
from ._observed import trim_heap
from ._scaling import _apply_scaling, _fit_scaling, _unscale, scaling_from_entries
from ._torch import fit_context, resolve_device, seed_from
from ._validation import (
    _check_any_observed,
    _check_limits,
    _check_raw_units,
    _is_nan_marker,
    _validate_dense,
)

# re-exported: _dmf imports it from here (as _sparse_path does _check_limits)
from ._validation import _is_nan as _is_nan

#: fraction of the observed entries that :meth:`BaseMatrixImputer.score` hides.
SCORE_FRACTION = 0.1
#: seed of the entries that :meth:`BaseMatrixImputer.score` hides (fixed, so
#: that every candidate in a grid search is scored on the same entries).
SCORE_SEED = 0


class BaseMatrixImputer(TransformerMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of the sklearn_mc imputers (not for direct use).

    Subclasses declare their own ``__init__`` (storing parameters only),
    extend ``_parameter_constraints`` and implement ``_fit`` / ``_transform``.
    The class attribute ``_scaling`` picks the scaling the method works in:
    ``"none"``, ``"standard"`` (per column: observed mean 0, std 1) or
    ``"minmax"`` (one affine map of the observed range onto [-1, 1]) or
    ``"magnitude"`` (no shift; every column divided by one power of two near
    the largest ``|value|``: exact, for methods whose parameters do not
    depend on the data's units). Every kind is scale-free: see
    :mod:`sklearn_mc._scaling`.
    """

    _parameter_constraints: dict = {
        "missing_values": [MissingValues(numeric_only=True)],
        "keep_empty_features": ["boolean"],
        "add_indicator": ["boolean"],
        "min_value": [
            None,
            Interval(numbers.Real, None, None, closed="both"),
            "array-like",
        ],
        "max_value": [
            None,
            Interval(numbers.Real, None, None, closed="both"),
            "array-like",
        ],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    _scaling = "none"

    # --- sparse hooks (see _sparse_path.py): a method that sets
    # _supports_sparse = True implements _fit_entries / _predict_entries.
    _supports_sparse = False
    #: a sparse-capable method that fits dense input from its observed
    #: entries sets this: its ``_fit`` then receives the scaled entries
    #: (:class:`~sklearn_mc._observed.ObservedEntries`, the values of the
    #: scaled ``X`` bit for bit) instead of a scaled dense copy of ``X``.
    _dense_fit_from_entries = False
    #: a sparse-capable method that takes int32 indices as they are sets
    #: this: a dense fit's kept entries (``_train_entries``, and those handed
    #: to ``_fit``) then have int32 indices where the shape allows, 16 bytes
    #: per entry instead of 24. A method that converts them to int64 would
    #: only add a copy, so it is opt-in.
    _compact_entries = False

    def _fit_entries(self, entries) -> None:
        """Learn from scaled :class:`~sklearn_mc._observed.ObservedEntries`."""
        raise NotImplementedError  # pragma: no cover

    def _predict_entries(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Scaled model values at (row, valid column) pairs of the training data."""
        raise NotImplementedError  # pragma: no cover

    # --- end sparse hooks

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _fit(self, X: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
        """Learn from scaled ``X``; return its completion or ``None``."""

    @abstractmethod
    def _transform(self, X: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Complete the rows of scaled ``X`` independently of each other."""

    # ----------------------------------------------------------- public API
    def fit(self, X, y=None):
        """Learn the completion model from ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries marked by ``missing_values``.
            For imputers that accept sparse input, also a scipy.sparse
            matrix or array: stored entries are observed (an explicit 0 is a
            value of 0), absent entries are missing; this differs from
            scikit-learn's imputers (see the user guide, "Rating data").
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The fitted imputer.
        """
        if _sparse_path.is_sparse(X):  # sparse hook
            _sparse_path.fit_sparse(self, X)
            return self
        self._fit_validated(X)
        return self

    def fit_transform(self, X, y=None, **fit_params):
        """Fit on ``X`` and return its completion (transductive).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries marked by ``missing_values``.
            For imputers that accept sparse input, also a scipy.sparse
            matrix or array: stored entries are observed (an explicit 0 is a
            value of 0), absent entries are missing; this differs from
            scikit-learn's imputers (see the user guide, "Rating data").
        y : None
            Ignored; present for API consistency.
        **fit_params : dict
            Ignored; present for API consistency.

        Returns
        -------
        X_completed : ndarray of shape (n_samples, n_features_out)
            ``X`` with every missing entry filled and observed entries unchanged.
        """
        if _sparse_path.is_sparse(X):  # sparse hook
            return _sparse_path.fit_transform_sparse(self, X)
        X, mask, completion, out_dtype = self._fit_validated(X)
        if completion is None:
            completion = self._run_transform(X, mask)
        out = self._finish(X, mask, completion, keep_valid_only=True)
        return self._assemble(out, mask, None, out_dtype)

    def transform(self, X):
        """Complete the rows of ``X`` by the method's inductive rule.

        Rows are completed independently: row ``i`` of the output depends
        only on row ``i`` of ``X``. Batched linear algebra may round a row
        differently depending on the rows computed with it, so the same row
        in another batch agrees to within ``1e-12`` times the data's
        magnitude (a few units in the last place), not always bit for bit;
        the observed entries are always returned bit for bit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to complete, seen during ``fit`` or new.
            For imputers that accept sparse input, also a scipy.sparse
            matrix or array: stored entries are observed (an explicit 0 is a
            value of 0), absent entries are missing; this differs from
            scikit-learn's imputers (see the user guide, "Rating data").

        Returns
        -------
        X_completed : ndarray of shape (n_samples, n_features_out)
            ``X`` with every missing entry filled and observed entries unchanged.
        """
        if _sparse_path.is_sparse(X):  # sparse hook
            return _sparse_path.transform_sparse(self, X)
        check_is_fitted(self)
        X_all, out_dtype = self._validate(X, reset=False)
        X = X_all[:, self._valid_mask]
        mask = ~np.isnan(X)
        out = self._finish(X, mask, self._run_transform(X, mask), keep_valid_only=True)
        return self._assemble(out, mask, X_all, out_dtype)

    def score(self, X, y=None) -> float:
        """Minus the RMSE on a fixed, seeded tenth of the observed entries.

        Those entries are hidden, the rows are completed by :meth:`transform`
        and compared with the hidden values, so that model selection
        (``GridSearchCV(imputer, grid)``, ``cross_val_score(imputer, X)``)
        needs no scorer. Higher is better.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries; some observed entries must exist.
            For imputers that accept sparse input, also a scipy.sparse
            matrix or array: stored entries are observed (an explicit 0 is a
            value of 0), absent entries are missing; this differs from
            scikit-learn's imputers (see the user guide, "Rating data").
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        score : float
            ``-rmse`` on the hidden entries, in the units of ``X``.
        """
        from .metrics import rmse
        from .model_selection import hide_entries

        if _sparse_path.is_sparse(X):  # sparse hook
            return _sparse_path.score_sparse(self, X)
        check_is_fitted(self)
        X = self._validate_input(X, reset=False)[:, self._valid_mask]
        X_hidden, hidden = hide_entries(
            X, fraction=SCORE_FRACTION, random_state=SCORE_SEED
        )
        if not hidden.any():
            raise ValueError(
                "score needs at least one observed entry in X to hide and predict."
            )
        mask = ~np.isnan(X_hidden)
        completed = self._finish(
            X_hidden, mask, self._run_transform(X_hidden, mask), keep_valid_only=True
        )
        return -rmse(X, completed, hidden)

    def predict_entries(self, rows, cols) -> np.ndarray:
        """Completed values at given (row, column) pairs of the training matrix.

        Nothing of shape ``(n_samples, n_features)`` is built: memory grows
        with the number of pairs asked for. Observed pairs return their
        observed value, as :meth:`fit_transform` does. Available for the
        imputers that accept sparse input (``_supports_sparse``), after a
        sparse or dense fit. Pairs in a column that had no observed entry at
        fit (a cold-start item) get the mean of all observed training values.

        Parameters
        ----------
        rows : array-like of int, shape (n_pairs,)
            Row indices in ``[0, n_samples)`` of the training matrix.
        cols : array-like of int, shape (n_pairs,)
            Column indices in ``[0, n_features_in_)``.

        Returns
        -------
        values : ndarray of float64, shape (n_pairs,)
            The completion at each pair, in the units of ``X``.
        """
        return _sparse_path.predict_entries(self, rows, cols)

    def get_feature_names_out(self, input_features=None):
        """Names of the output features.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names; defaults to ``feature_names_in_`` or
            ``x0, x1, ...``.

        Returns
        -------
        feature_names_out : ndarray of str objects
            The input names, without the all-missing columns of the training
            data unless ``keep_empty_features=True``; with
            ``add_indicator=True`` followed by the indicator's names
            (``missingindicator_<name>``), as in :mod:`sklearn.impute`.
        """
        check_is_fitted(self, "n_features_in_")
        names = _check_feature_names_in(self, input_features)
        out = names if self.keep_empty_features else names[self._valid_mask]
        indicator = getattr(self, "indicator_", None)
        if indicator is not None:
            out = np.concatenate([out, indicator.get_feature_names_out(names)])
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = _is_nan_marker(self.missing_values)
        tags.input_tags.sparse = self._supports_sparse  # sparse hook
        return tags

    def __getstate__(self):
        # A model trained on a GPU must load on a CPU-only machine.
        state = super().__getstate__()
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                state[key] = value.detach().cpu()
            elif isinstance(value, torch.nn.Module):
                state[key] = copy.deepcopy(value).cpu()
        return state

    # ------------------------------------------------------------ internals
    @property
    def _device(self) -> torch.device:
        return resolve_device(self.device)

    def _validate_input(self, X, *, reset: bool) -> np.ndarray:
        """Validated float64 ``X`` with NaN at the missing entries (read-only)."""
        return self._validate(X, reset=reset)[0]

    def _validate(self, X, *, reset: bool) -> tuple[np.ndarray, np.dtype]:
        """Validated float64 ``X`` (NaN = missing) and the output dtype.

        See :func:`~sklearn_mc._validation._validate_dense`; the result may
        be the caller's own array: treat it as read-only.
        """
        return _validate_dense(self, X, reset=reset)

    def _fit_validated(self, X):
        """Validate, set the shared fitted state and run the method's ``_fit``.

        Returns the valid columns of ``X`` (unscaled, NaN = missing), their
        mask, the method's completion (scaled, or None) and the output dtype.
        """
        self._validate_params()
        X, out_dtype = self._validate(X, reset=True)
        mask = ~np.isnan(X)
        _check_any_observed(mask)
        self._min_value, self._max_value = _check_limits(self, X.shape[1])
        self.indicator_ = None
        if getattr(self, "add_indicator", False):
            # Markers are NaN by now: the indicator reads NaN as missing.
            self.indicator_ = MissingIndicator(
                missing_values=np.nan, error_on_new=False
            ).fit(X)
        self._valid_mask = mask.any(axis=0)
        if not self._valid_mask.all():  # a copy only where columns are dropped
            X, mask = X[:, self._valid_mask], mask[:, self._valid_mask]
        _sparse_path.remember_entries(self, X)  # sparse hook
        _check_raw_units(self, X, mask)
        if self._supports_sparse:  # the entries remember_entries kept
            entries = self._train_entries
            self._scale_shift, self._scale_factor = self._scaling_statistics(
                entries.values, entries.cols, entries.shape[1]
            )
        else:
            self._scale_shift, self._scale_factor = _fit_scaling(X, mask, self._scaling)
        device = self._device
        # Scale before fit_context: it flushes denormals, which would zero
        # (or turn into NaN) data and factors of magnitude below ~2.2e-308.
        if self._supports_sparse and self._dense_fit_from_entries:
            scaled = _sparse_path._scaled(self, self._train_entries)
            # The scaling's entry-sized temporaries are freed by now; without
            # this the C allocator keeps them resident under the method's own
            # layout of the entries.
            trim_heap(scaled.n_observed)
        else:
            scaled = self._scale(X)
        with fit_context(seed_from(self.random_state), device):
            completion = self._fit(scaled, mask)
        del scaled  # not held while the completion is finished
        return X, mask, completion, out_dtype

    def _run_transform(self, X: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._transform(self._scale(X), mask)

    def _scaling_statistics(self, values, cols, n_cols: int):
        """Shift and factor of each column, from the observed entries.

        Sparse-capable methods only (dense and sparse input alike): the
        package's scaler of kind ``_scaling``. A method whose map is not one
        of those kinds (DMF's column ranges onto [-1, 1]) overrides this
        hook; the base then scales, unscales and stores the statistics.
        """
        return scaling_from_entries(values, cols, n_cols, self._scaling)

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return _apply_scaling(X, self._scale_shift, self._scale_factor)

    def _finish(self, X, mask, completion, keep_valid_only: bool = False):
        """Unscale, put observed entries back, guarantee finiteness.

        Returns the valid columns (float64). With ``keep_valid_only=False``
        the columns that were empty at fit are added as zeros when
        ``keep_empty_features=True``; the public methods pass ``True`` and
        let :meth:`_assemble` add them (with the observed values of new data).
        """
        completion = np.asarray(completion, dtype=np.float64)
        out = _unscale(completion, self._scale_shift, self._scale_factor)
        np.copyto(out, X, where=mask)  # observed entries back, no gathered copy
        if not np.isfinite(out).all():
            raise self._non_finite_error(X, mask, completion)
        if keep_valid_only or self._valid_mask.all() or not self.keep_empty_features:
            return out
        full = np.zeros((out.shape[0], self.n_features_in_))
        full[:, self._valid_mask] = out
        return full

    def _non_finite_error(self, X, mask, completion) -> Exception:
        """The error for a completion with non-finite values, naming the cause."""
        name = type(self).__name__
        observed = X[mask]
        top = float(np.abs(observed).max()) if observed.size else 0.0
        if np.isfinite(completion[~mask]).all():
            return ValueError(
                f"{name}: the completion exceeds the float64 range (about "
                f"1.8e308); the observed values reach |x| = {top:.3g}. Rescale X "
                "(for example divide it by a power of ten) before imputing."
            )
        if "learning_rate" in self.get_params():
            return RuntimeError(
                f"{name} produced non-finite values for missing entries (the "
                "optimisation diverged); try a smaller learning_rate or stronger "
                "regularisation."
            )
        hint = ""
        if getattr(self, "scaling", None) == "none":
            hint = (
                "; with scaling='none' the method computes in the units of X, "
                "scaling='standard' does not"
            )
        return RuntimeError(
            f"{name} produced non-finite values for missing entries: a numerical "
            f"failure on data whose observed values reach |x| = {top:.3g}{hint}."
        )

    def _assemble(self, out, mask, X_all, out_dtype):
        """The public output from the completed valid columns ``out``.

        Clips the imputed entries to ``[min_value, max_value]``, adds the
        columns empty at fit (``keep_empty_features=True``: their missing
        entries are 0, clipped; their observed entries in ``X_all`` are kept,
        as :class:`sklearn.impute.SimpleImputer` does) and the missing
        indicator (``add_indicator=True``), then casts to ``out_dtype``.
        ``X_all`` is the validated input over all columns, or None at
        ``fit_transform`` (where the empty columns have no observed entry).
        """
        valid = self._valid_mask
        lo = getattr(self, "_min_value", None)
        hi = getattr(self, "_max_value", None)
        bounded = lo is not None and (np.isfinite(lo).any() or np.isfinite(hi).any())
        if bounded:
            out = np.where(mask, out, np.clip(out, lo[valid], hi[valid]))
        if self.keep_empty_features and not valid.all():
            empty = ~valid
            fill = np.zeros(int(empty.sum()))
            if bounded:
                fill = np.clip(fill, lo[empty], hi[empty])
            full = np.empty((out.shape[0], self.n_features_in_))
            full[:, valid] = out
            if X_all is None:
                full[:, empty] = fill
            else:
                X_empty = X_all[:, empty]
                full[:, empty] = np.where(np.isnan(X_empty), fill, X_empty)
            out = full
        indicator = getattr(self, "indicator_", None)
        if indicator is not None:
            out = np.hstack([out, self._indicator_block(mask, X_all)])
        if out.dtype != out_dtype:
            out = out.astype(out_dtype)
            if not np.isfinite(out).all():
                raise ValueError(
                    f"{type(self).__name__}: an imputed value exceeds the range of "
                    f"{out_dtype} (the input's dtype); pass X as float64."
                )
        return out

    def _indicator_block(self, mask, X_all) -> np.ndarray:
        """The missing indicator's columns (``indicator_.features_``), as floats."""
        features = self.indicator_.features_
        if X_all is not None:
            return np.isnan(X_all[:, features]).astype(np.float64)
        # fit_transform: empty columns are missing everywhere
        valid = self._valid_mask
        position = np.cumsum(valid) - 1
        block = np.ones((mask.shape[0], features.size))
        seen = valid[features]
        block[:, seen] = ~mask[:, position[features[seen]]]
        return block


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn, attributing the warning to the first frame outside the libraries.

    The same warning is reached through ``fit``, ``fit_transform`` (wrapped by
    scikit-learn's ``set_output``), pipelines and searches, so no fixed
    ``stacklevel`` points at the user's line; this walks past the frames of
    sklearn_mc and scikit-learn instead.
    """
    import sklearn

    libraries = tuple(
        os.path.dirname(module.__file__) + os.sep
        for module in (sys.modules[__package__], sklearn)
    )
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(libraries):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


#: reusable constraint for the ``device`` parameter of subclasses.
DEVICE_CONSTRAINT = [str, torch.device]
#: reusable constraint for optimiser names.
OPTIMIZER_CONSTRAINT = [StrOptions({"adam", "sgd", "rmsprop", "grouprmsprop"})]
