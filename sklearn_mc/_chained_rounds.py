"""The rounds of ChainedImputer: chained regressions, column by column.

The linear chained equations (rounds of Bayesian ridge regressions, each
column with missing entries on all the others, as scikit-learn's
``IterativeImputer``), the second stage (each column's chosen models averaged,
with the linear completion as features), the missForest-style refinement
rounds, and the chunked prediction they all use. Every function works on
standardised tables (0 is a column's mean) and draws from the ``rng`` of the
caller's settings, in a fixed order (the fit's reproducibility).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import BayesianRidge

from ._optim import warn_not_converged

#: rows per ``predict`` call in ``transform``: bounds the memory of the
#: k-nearest-neighbour candidate independently of the number of rows.
CHUNK_ROWS = 4096


def _fit_model(estimator, filled, rows, j, rng):
    """Clone, seed and fit ``estimator`` for column ``j`` on ``rows``."""
    if rows.size < 2 or filled.shape[1] < 2:
        return None
    model = clone(estimator)
    params = model.get_params()
    if "random_state" in params:
        model.set_params(random_state=int(rng.randint(2**31 - 1)))
    if "n_neighbors" in params:
        model.set_params(n_neighbors=min(model.n_neighbors, rows.size))
    model.fit(np.delete(filled[rows], j, axis=1), filled[rows, j])
    return model


def _fit_rows(mask, j, max_fit_rows, rng):
    rows = np.flatnonzero(mask[:, j])
    if max_fit_rows is not None and rows.size > max_fit_rows:
        rows = np.sort(rng.choice(rows, max_fit_rows, replace=False))
    return rows


def run_chain(
    X: np.ndarray,
    mask: np.ndarray,
    candidates: list[tuple[str, object]],
    chosen: list[tuple[str, ...]],
    settings: dict,
    *,
    store: bool,
    keep_all: bool = False,
):
    """Linear rounds, then one round of each column's chosen models.

    Returns the completions of every model (``keep_all``), or the fitted
    linear rounds, the completion and the second-stage models (``store``).
    """
    rng, order = settings["rng"], settings["order"]
    n_features = X.shape[1]
    missing = ~mask
    filled = np.where(mask, X, 0.0)  # standardised: 0 is the column mean
    to_impute = [j for j in order if missing[:, j].any()]
    linear_rounds = []
    for _ in range(settings["max_iter"] if to_impute else 0):
        previous = filled[missing]
        models = [None] * n_features
        for j in to_impute:
            rows = _fit_rows(mask, j, settings["max_fit_rows"], rng)
            models[j] = _fit_model(BayesianRidge(), filled, rows, j, rng)
            at = missing[:, j]
            filled[at, j] = predict_column(models[j], filled[at], j)
        linear_rounds.append(models)
        if np.mean((filled[missing] - previous) ** 2) < settings["tol"]:
            break
    else:
        if store and to_impute:
            # the fit's own chain (not a selection run) used every round
            warn_not_converged("ChainedImputer", settings["max_iter"], settings["tol"])
    if store:
        # Columns complete here get a regression too: new rows may miss them.
        complete = [j for j in order if not missing[:, j].any()]
        if complete and not linear_rounds:
            linear_rounds.append([None] * n_features)
        for j in complete:
            rows = _fit_rows(mask, j, settings["max_fit_rows"], rng)
            linear_rounds[-1][j] = _fit_model(BayesianRidge(), filled, rows, j, rng)
    lookup = dict(candidates)
    fitted = [{} for _ in range(n_features)]
    # Columns complete here still get models when stored: new rows may miss them.
    for j in order if store else to_impute:
        names = [name for name in chosen[j] if name != "linear"]
        if not names:
            continue
        rows = _fit_rows(mask, j, settings["max_fit_rows"], rng)
        for name in names:
            fitted[j][name] = _fit_model(lookup[name], filled, rows, j, rng)
    if keep_all:
        preds = {"linear": filled}
        for name, _ in candidates:
            out = filled.copy()
            for j in to_impute:
                at = missing[:, j]
                out[at, j] = predict_column(fitted[j].get(name), filled[at], j)
            preds[name] = out
        return preds
    completion = second_stage(filled, missing, chosen, fitted)
    return linear_rounds, completion, fitted


def refine_round(
    filled: np.ndarray,
    mask: np.ndarray,
    chosen: list[tuple[str, ...]],
    candidates: list[tuple[str, object]],
    settings: dict,
) -> list[dict]:
    """One missForest-style round, in place: refit and re-predict each column.

    Each column with missing entries, in imputation order, has its chosen
    models (``"linear"``: a Bayesian ridge) refitted on its observed rows with
    the current completion as features, and its missing entries replaced by
    their average before the next column is refitted. Returns the fitted
    models, per column by name (empty for complete columns).
    """
    rng, order = settings["rng"], settings["order"]
    lookup = dict(candidates, linear=BayesianRidge())
    missing = ~mask
    models = [{} for _ in range(filled.shape[1])]
    for j in order:
        if not missing[:, j].any():
            continue
        rows = _fit_rows(mask, j, settings["max_fit_rows"], rng)
        for name in chosen[j]:
            models[j][name] = _fit_model(lookup[name], filled, rows, j, rng)
        apply_round(filled, missing, [j], chosen, models)
    return models


def apply_round(
    filled: np.ndarray,
    missing: np.ndarray,
    order,
    chosen: list[tuple[str, ...]],
    models: list[dict],
) -> None:
    """Replace the missing entries of ``order``'s columns by their models' average."""
    for j in order:
        at = missing[:, j]
        if not at.any() or not models[j]:
            continue
        filled[at, j] = np.mean(
            [predict_column(models[j][name], filled[at], j) for name in chosen[j]],
            axis=0,
        )


def second_stage(
    filled: np.ndarray,
    missing: np.ndarray,
    chosen: list[tuple[str, ...]],
    fitted: list[dict],
) -> np.ndarray:
    """Average of each column's chosen models, features from the linear completion."""
    out = filled.copy()
    for j, combo in enumerate(chosen):
        at = missing[:, j]
        if not at.any() or combo == ("linear",):
            continue
        guesses = [
            filled[at, j]
            if name == "linear"
            else predict_column(fitted[j][name], filled[at], j)
            for name in combo
        ]
        out[at, j] = np.mean(guesses, axis=0)
    return out


def predict_column(model, rows: np.ndarray, j: int) -> np.ndarray:
    """``model``'s prediction for column ``j`` of ``rows`` (0, the mean, if None)."""
    out = np.zeros(rows.shape[0])
    if model is None or rows.shape[0] == 0:
        return out
    features = np.delete(rows, j, axis=1)
    for start in range(0, rows.shape[0], CHUNK_ROWS):
        out[start : start + CHUNK_ROWS] = model.predict(
            features[start : start + CHUNK_ROWS]
        )
    return out
