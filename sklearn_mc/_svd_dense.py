"""The dense SVDimpute / SoftImpute loop (``SVDImputer(solver="svd")``).

Troyanskaya et al., "Missing value estimation methods for DNA microarrays"
(2001): fill the holes, take a truncated SVD, refill, repeat; with a soft
threshold on the singular values, SoftImpute (Mazumder, Hastie and
Tibshirani, 2010).
"""

from __future__ import annotations

import torch

from ._progress import progress
from ._torch import low_rank_svd, make_generator


def _fit_svd(
    entries, rank, shrinkage, center, max_iter, tol, seed, verbose, floors=None
):
    """SVDimpute / SoftImpute: fill, truncated SVD, refill, repeat (dense).

    With ``center`` the column offsets are refit at every sweep as the column
    means of the filled matrix minus its low-rank part, so that offsets and
    low-rank part minimise the same squared error jointly.
    """
    m, n = entries.shape
    device, dtype = entries.device, entries.dtype
    rows, cols = entries.rows, entries.cols.long()
    observed = torch.zeros(m, n, dtype=torch.bool, device=device)
    observed[rows, cols] = True
    Y = torch.zeros(m, n, dtype=dtype, device=device)
    Y[rows, cols] = entries.values
    col_means = Y.sum(0) / observed.sum(0).clamp(min=1)
    Y = torch.where(observed, Y, col_means)
    low_rank = torch.zeros_like(Y)
    c = torch.zeros(n, dtype=dtype, device=device)
    gen = make_generator(seed)
    use_lowrank = rank + 10 < min(m, n) // 2
    n_iter, losses, converged = 0, [], False
    bar = progress(max_iter, verbose, "SVDImputer (svd)")
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is returned
        if center:
            c = (Y - low_rank).mean(0)
        P, s, Qt = _truncated_svd(Y - c, rank, use_lowrank, gen)
        s = (s - shrinkage).clamp(min=0)
        low_rank = (P * s) @ Qt
        Y_new = torch.where(observed, Y, low_rank + c)
        change = float((Y_new - Y).norm() / Y.norm().clamp(min=1e-300))
        Y = Y_new
        # mean squared residual on the observed entries
        losses.append(float((Y - low_rank - c)[observed].square().mean()))
        bar.set_postfix(change=f"{change:.2e}", refresh=False)
        bar.update(1)
        if change < tol:
            converged = True
            break
    bar.close()
    root = s.sqrt()
    return P * root, Qt.T * root, c, n_iter, losses, converged


def _truncated_svd(Z, rank, randomized, gen):
    if randomized:
        sub = make_generator(int(torch.randint(2**31 - 1, (1,), generator=gen)))
        P, s, Q = low_rank_svd(Z, rank + 10, 4, sub)
        return P[:, :rank], s[:rank], Q[:, :rank].T
    P, s, Qt = torch.linalg.svd(Z, full_matrices=False)
    return P[:, :rank], s[:rank], Qt[:rank]
