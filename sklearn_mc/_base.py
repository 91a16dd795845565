"""The estimator contract shared by every sklearn_mc imputer.

:class:`BaseMatrixImputer` owns everything that is not a method's own
mathematics: input validation, the missing-value mask, all-missing columns,
optional scaling, device resolution, seeding, putting observed entries back,
the finiteness guarantee, ``score`` and feature names. A method implements two
hooks on clean float64 arrays:

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
from sklearn.utils._param_validation import MissingValues, StrOptions
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_is_fitted,
    validate_data,
)

from ._torch import fit_context, resolve_device, seed_from

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
    ``"minmax"`` (one affine map of the observed range onto [-1, 1]).
    """

    _parameter_constraints: dict = {
        "missing_values": [MissingValues(numeric_only=True)],
        "keep_empty_features": ["boolean"],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    _scaling = "none"

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
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The fitted imputer.
        """
        self._fit_validated(X)
        return self

    def fit_transform(self, X, y=None, **fit_params):
        """Fit on ``X`` and return its completion (transductive).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries marked by ``missing_values``.
        y : None
            Ignored; present for API consistency.
        **fit_params : dict
            Ignored; present for API consistency.

        Returns
        -------
        X_completed : ndarray of shape (n_samples, n_features_out)
            ``X`` with every missing entry filled and observed entries unchanged.
        """
        X, mask, completion = self._fit_validated(X)
        if completion is None:
            completion = self._run_transform(X, mask)
        return self._finish(X, mask, completion)

    def transform(self, X):
        """Complete the rows of ``X`` by the method's inductive rule.

        Rows are completed independently: row ``i`` of the output depends
        only on row ``i`` of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to complete, seen during ``fit`` or new.

        Returns
        -------
        X_completed : ndarray of shape (n_samples, n_features_out)
            ``X`` with every missing entry filled and observed entries unchanged.
        """
        check_is_fitted(self)
        X = self._validate_input(X, reset=False)[:, self._valid_mask]
        mask = ~np.isnan(X)
        return self._finish(X, mask, self._run_transform(X, mask))

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
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        score : float
            ``-rmse`` on the hidden entries, in the units of ``X``.
        """
        from .metrics import rmse
        from .model_selection import hide_entries

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
            data unless ``keep_empty_features=True``.
        """
        check_is_fitted(self, "n_features_in_")
        names = _check_feature_names_in(self, input_features)
        if self.keep_empty_features:
            return names
        return names[self._valid_mask]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
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
        nan_marker = _is_nan(self.missing_values)
        try:
            X = validate_data(
                self,
                X,
                reset=reset,
                dtype=np.float64,
                ensure_all_finite="allow-nan" if nan_marker else True,
                copy=True,
            )
        except ValueError as exc:
            if "could not convert" in str(exc) or "convert string" in str(exc):
                raise ValueError(
                    f"X contains non-numeric data ({exc}). sklearn_mc imputers "
                    "need numeric input: encode or drop categorical columns first."
                ) from exc
            raise
        if not nan_marker:
            X[X == self.missing_values] = np.nan
        return X

    def _fit_validated(self, X):
        """Validate, set the shared fitted state and run the method's ``_fit``."""
        self._validate_params()
        X = self._validate_input(X, reset=True)
        mask = ~np.isnan(X)
        if not mask.any():
            raise ValueError(
                "All entries of X are missing: there is nothing to learn from."
            )
        self._valid_mask = mask.any(axis=0)
        X, mask = X[:, self._valid_mask], mask[:, self._valid_mask]
        self._scale_shift, self._scale_factor = _fit_scaling(X, mask, self._scaling)
        device = self._device
        with fit_context(seed_from(self.random_state), device):
            completion = self._fit(self._scale(X), mask)
        return X, mask, completion

    def _run_transform(self, X: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._transform(self._scale(X), mask)

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return (X - self._scale_shift) / self._scale_factor

    def _finish(self, X, mask, completion, keep_valid_only: bool = False):
        """Unscale, put observed entries back, guarantee finiteness, add empties."""
        out = np.asarray(completion, dtype=np.float64) * self._scale_factor
        out += self._scale_shift
        out[mask] = X[mask]
        if not np.isfinite(out).all():
            raise RuntimeError(
                f"{type(self).__name__} produced non-finite values for missing "
                "entries (the optimisation diverged); try a smaller learning rate "
                "or stronger regularisation."
            )
        if keep_valid_only or self._valid_mask.all() or not self.keep_empty_features:
            return out
        full = np.zeros((out.shape[0], self.n_features_in_))
        full[:, self._valid_mask] = out
        return full


def _is_nan(value) -> bool:
    return isinstance(value, numbers.Real) and np.isnan(value)


def _fit_scaling(X: np.ndarray, mask: np.ndarray, kind: str):
    """Shift and factor (broadcastable to X) that put X in the method's scale."""
    n_features = X.shape[1]
    if kind == "none":
        return np.zeros(n_features), np.ones(n_features)
    if kind == "standard":
        counts = mask.sum(axis=0)
        values = np.where(mask, X, 0.0)
        mean = values.sum(axis=0) / counts
        var = (np.where(mask, X - mean, 0.0) ** 2).sum(axis=0) / counts
        std = np.sqrt(var)
        std[~(std > 1e-12 * np.maximum(1.0, np.abs(mean)))] = 1.0
        return mean, std
    if kind == "minmax":
        lo, hi = np.nanmin(X), np.nanmax(X)
        half_range = (hi - lo) / 2 if hi > lo else 1.0
        return np.full(n_features, (hi + lo) / 2), np.full(n_features, half_range)
    raise ValueError(f"unknown scaling {kind!r}")  # pragma: no cover


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
