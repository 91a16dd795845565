"""The low-rank completion of ChainedImputer's blend: SoftImpute, then its map.

A soft-thresholded SVD (Mazumder, Hastie and Tibshirani, "Spectral
Regularization Algorithms for Learning Large Incomplete Matrices", JMLR 2010)
fitted on the standardised table gives a shrunken projection ``W``
(:func:`soft_impute_map`); every row, of the training table or new, is then
completed as the fixed point of that projection given its observed entries
(:func:`low_rank_complete`). ChainedImputer chooses the shrinkage and each
column's weight in the blend on re-hidden entries (:func:`choose_blend`).
"""

from __future__ import annotations

import numpy as np

#: shrinkage of the low-rank completion, as shares of the largest singular
#: value of the mean-filled standardised table; the selection runs choose one
#: by held-out error (0.02 is fancyimpute's default; below it the iteration
#: budget, not the shrinkage, decides the fit).
LOW_RANK_SHRINKAGE = (0.2, 0.1, 0.05, 0.02)
#: iterations and relative tolerance of the soft-thresholded SVD (the settings
#: of fancyimpute's SoftImpute: a fixed budget from the mean fill, which also
#: regularises).
LOW_RANK_ITER = 100
LOW_RANK_TOL = 1e-3
#: weights of the low-rank completion in a column's blend with the chained
#: completion; the selection runs choose one per column.
LOW_RANK_WEIGHTS = (0.0, 0.5, 1.0)
#: bound on the entries of the batched per-row systems of the low-rank
#: completion (rows per batch x n_features**2).
SOLVE_ENTRIES = 2**21


def soft_impute_map(X: np.ndarray, mask: np.ndarray, shrinkage: float) -> np.ndarray:
    """The shrunken projection of a soft-thresholded SVD completion of ``X``.

    SoftImpute (Mazumder, Hastie and Tibshirani, "Spectral Regularization
    Algorithms for Learning Large Incomplete Matrices", JMLR 2010): starting
    from the column means (0: the table is standardised), the missing entries
    are replaced by those of ``S_lambda(F)``, the SVD of the current fill
    ``F`` with its singular values ``d`` soft-thresholded to
    ``max(d - lambda, 0)``, at most ``LOW_RANK_ITER`` times or until the
    imputed entries change by less than ``LOW_RANK_TOL`` (relative).
    ``lambda`` is ``shrinkage`` times the largest singular value of the
    mean-filled table. The SVD is taken through the eigendecomposition of
    the ``n_features``-square Gram matrix ``F.T @ F``: ``S_lambda(F) = F W``
    with ``W = V diag(max(d - lambda, 0) / d) V.T``.

    Returns ``W`` of the last iteration, shape ``(n_features, n_features)``.
    """
    base = np.where(mask, X, 0.0)
    missing = (~mask).astype(np.float64)
    filled = base
    lam = None
    weights = np.zeros((X.shape[1], X.shape[1]))
    for _ in range(LOW_RANK_ITER):
        evals, vecs = np.linalg.eigh(filled.T @ filled)
        sing = np.sqrt(np.clip(evals, 0.0, None))
        if lam is None:
            lam = shrinkage * sing.max()
        keep = sing > lam
        factor = np.where(keep, (sing - lam) / np.where(keep, sing, 1.0), 0.0)
        weights = (vecs * factor) @ vecs.T
        new = base + missing * (filled @ weights)  # observed entries kept
        norm = np.sqrt(np.sum((filled - base) ** 2))  # the imputed entries
        change = np.sqrt(np.sum((new - filled) ** 2))
        filled = new
        if norm > 0 and change < LOW_RANK_TOL * norm:
            break
    return weights


def low_rank_complete(
    X: np.ndarray, mask: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Each row completed as the fixed point of the shrunken projection.

    A row ``f`` whose observed entries are kept and whose missing entries
    ``m`` satisfy ``f_m = (f W)_m`` -- the fixed point of the SoftImpute
    update with ``W`` held fixed -- solves ``(I - D W.T) f = (I - D) x``, with
    ``D`` the diagonal 0/1 indicator of the row's missing entries. ``W`` is
    symmetric with eigenvalues in ``[0, 1)`` (soft thresholding with
    ``lambda > 0``), so the system is regular. One batched solve per block of
    rows: the same map for the training rows and for new rows.
    """
    out = np.where(mask, X, 0.0)
    n_features = X.shape[1]
    rows = np.flatnonzero((~mask).any(axis=1))
    step = max(1, SOLVE_ENTRIES // n_features**2)
    eye = np.eye(n_features)
    for start in range(0, rows.size, step):
        block = rows[start : start + step]
        missing = (~mask[block]).astype(np.float64)
        system = eye - missing[:, :, None] * weights.T[None, :, :]
        out[block] = np.linalg.solve(system, out[block][:, :, None])[:, :, 0]
    return out


def choose_blend(
    runs: list, completions: list[np.ndarray], n_features: int, min_entries: int
) -> tuple[dict, float | None, np.ndarray, list[dict]]:
    """The low-rank shrinkage, then each column's weight, on re-hidden entries.

    Each selection run's table is completed by a soft-thresholded SVD at
    every shrinkage of ``LOW_RANK_SHRINKAGE``; the one with the least
    error on all re-hidden entries is kept. Then, per column, the weight
    of ``LOW_RANK_WEIGHTS`` whose blend with the runs' final completions
    (chosen options, refinement rounds) has the least error on that
    column's re-hidden entries (0 below ``min_entries`` of them).

    ``runs`` are ChainedImputer's selection runs, ``(table, training mask,
    hidden mask, predictions)`` (none: nothing is tried), and
    ``completions`` their final completions. Returns the held-out error per
    shrinkage, the shrinkage kept (None when none was tried), each column's
    weight and each column's error per weight: the fitted attributes
    ``low_rank_scores_``, ``low_rank_shrinkage_``, ``low_rank_weights_`` and
    ``low_rank_blend_scores_``.
    """
    scores, shrinkage = {}, None
    weights = np.zeros(n_features)
    blend_scores = [{} for _ in range(n_features)]
    if not runs:
        return scores, shrinkage, weights, blend_scores
    paths = [
        [
            low_rank_complete(sub_X, train, soft_impute_map(sub_X, train, s))
            for s in LOW_RANK_SHRINKAGE
        ]
        for sub_X, train, _, _ in runs
    ]
    n_hidden = sum(hide.sum() for _, _, hide, _ in runs)
    errors = [
        sum(
            np.sum((path[k][hide] - sub_X[hide]) ** 2)
            for path, (sub_X, _, hide, _) in zip(paths, runs, strict=True)
        )
        / n_hidden
        for k in range(len(LOW_RANK_SHRINKAGE))
    ]
    scores = dict(zip(LOW_RANK_SHRINKAGE, map(float, errors), strict=True))
    best = int(np.argmin(errors))
    shrinkage = LOW_RANK_SHRINKAGE[best]
    for j in range(n_features):
        sq_err, count = np.zeros(len(LOW_RANK_WEIGHTS)), 0
        for path, out, (sub_X, _, hide, _) in zip(
            paths, completions, runs, strict=True
        ):
            at = hide[:, j]
            count += at.sum()
            for k, weight in enumerate(LOW_RANK_WEIGHTS):
                guess = (1 - weight) * out[at, j] + weight * path[best][at, j]
                sq_err[k] += np.sum((guess - sub_X[at, j]) ** 2)
        if count < min_entries:
            continue
        blend_scores[j] = dict(
            zip(LOW_RANK_WEIGHTS, map(float, sq_err / count), strict=True)
        )
        weights[j] = LOW_RANK_WEIGHTS[int(np.argmin(sq_err))]
    return scores, shrinkage, weights, blend_scores
