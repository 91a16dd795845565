"""The held-out choice of KNNImputer's shrinkage toward the column mean.

``mean_shrinkage="auto"`` (see "Shrinkage toward the mean" in
:class:`~sklearn_mc.KNNImputer`'s docstring): observed entries of a sample of
the training rows are hidden, a pass at a time, and completed by the
imputer's own neighbour search; each column's blend weight is then fitted to
them (:func:`~sklearn_mc._mean_blend.blend_weights`).
"""

from __future__ import annotations

import numpy as np
import sklearn

from ._mean_blend import blend_weights
from ._torch import draw_seed

#: row completions the held-out search of ``mean_shrinkage="auto"`` may run
HOLDOUT_BUDGET = 1000
#: folds of a held-out row's observed entries (a fifth hidden at a time)
HOLDOUT_FOLDS = 5
#: groups of the held-out rows that hide their fold's entries together (so
#: that a row's near-duplicate rarely hides the same entry in the same pass)
HOLDOUT_GROUPS = 4
#: working memory (MiB) of the held-out completions' chunks
HOLDOUT_MEMORY = 4


def held_out_weights(imputer) -> np.ndarray:
    """Per column, the blend weight ``w_j`` chosen on held-out entries.

    ``imputer`` is the KNNImputer being fitted: its training data
    (``_fit_X``, ``_mask_fit_X``), column means and neighbour search. See
    "Shrinkage toward the mean" in its class docstring. The held-out
    entries are hidden in ``_fit_X`` / ``_mask_fit_X`` in place, one pass
    (a group of rows, a fold of their entries) at a time, and always put
    back.
    """
    fit_X, fit_mask = imputer._fit_X, imputer._mask_fit_X
    n_train, n_features = fit_mask.shape
    rng = np.random.RandomState(draw_seed())
    n_hold = min(n_train, HOLDOUT_BUDGET)
    hold = np.sort(rng.choice(n_train, n_hold, replace=False))
    # As many folds as the budget allows (all of them on small tables).
    n_folds = max(1, min(HOLDOUT_FOLDS, HOLDOUT_BUDGET // n_hold))
    r, c = np.nonzero(fit_mask[hold])
    group = rng.permutation(hold.size) % HOLDOUT_GROUPS
    passes = group[r] * HOLDOUT_FOLDS + rng.permutation(r.size) % HOLDOUT_FOLDS
    donors = fit_mask.sum(axis=0)
    rows_features = imputer.axis == "features"
    pred = np.empty(r.size)
    used = np.zeros(r.size, dtype=bool)
    memory = min(sklearn.get_config()["working_memory"], HOLDOUT_MEMORY)
    for f in range(HOLDOUT_GROUPS * HOLDOUT_FOLDS):
        if f % HOLDOUT_FOLDS >= n_folds:
            continue
        at = np.flatnonzero(passes == f)
        if not rows_features:
            # Every column keeps a donor: hide none of a column's entries
            # in this fold if they are all its donors.
            keep = np.bincount(c[at], minlength=n_features) < donors
            at = at[keep[c[at]]]
        if not at.size:
            continue
        rows, cols = hold[r[at]], c[at]
        saved = fit_X[rows, cols]
        query, local = np.unique(rows, return_inverse=True)
        try:
            fit_X[rows, cols] = np.nan
            fit_mask[rows, cols] = False
            Xq, mq = fit_X[query], fit_mask[query]  # copies
            out = Xq.copy()
            todo = np.flatnonzero(~mq.all(axis=1))
            # Small chunks: fit holds X and its scaled copy meanwhile.
            with sklearn.config_context(working_memory=memory):
                if rows_features:
                    imputer._impute_from_columns(Xq, mq, todo, out)
                else:
                    imputer._impute_from_rows(Xq, mq, todo, out)
        finally:
            fit_X[rows, cols] = saved
            fit_mask[rows, cols] = True
        pred[at] = out[local, cols]
        used[at] = True
    mean = imputer._col_mean[c[used]]
    a = pred[used] - mean
    b = fit_X[hold[r[used]], c[used]] - mean
    return blend_weights(a, b, c[used], n_features)
