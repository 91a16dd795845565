"""k-nearest-neighbour imputation with nan-euclidean distances, in torch.

The estimator and its row search's orchestration; the searches themselves are
in ``_knn_rows`` and ``_knn_grid``, ``axis="features"`` in ``_knn_columns``,
the held-out choice of the shrinkage toward the mean in ``_knn_holdout``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import sklearn
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from . import _knn_columns as _columns
from . import _knn_grid as _grid
from . import _knn_holdout as _holdout
from . import _knn_rows as _rows
from ._base import BaseMatrixImputer
from ._mean_blend import (
    MEAN_SHRINKAGE_CONSTRAINT,
    shrink_missing,
    shrinkage_rule,
    store_blend_weights,
    warn_shrunk_to_mean,
)
from ._progress import progress
from ._torch import compute_dtype, to_numpy, to_tensor


class KNNImputer(BaseMatrixImputer):
    """Complete missing entries with the mean of the k nearest neighbours.

    With ``axis="samples"`` (default) and ``mean_shrinkage=None`` this is
    scikit-learn's :class:`sklearn.impute.KNNImputer`: a missing entry
    ``(i, j)`` gets the mean of column ``j`` over the ``n_neighbors`` training rows
    nearest to row ``i`` among those that observe ``j``. Distances are
    nan-euclidean, ``sqrt(sum((x - y)²) / n_common * n_features)`` over the
    coordinates both rows observe (``n_features`` counts the columns empty at
    fit, as in scikit-learn), undefined when they share none. Donors at an
    undefined distance rank last and count for nothing; a row with no donor at
    a defined distance gets the column's observed mean. Among donors tied at
    the ``k``-th distance the choice is scikit-learn's (see Notes).

    By default (``mean_shrinkage="auto"``, unlike scikit-learn) each column's
    neighbour averages are then moved toward the column mean by a weight
    chosen at fit on held-out observed entries, so that the imputer is not
    worse than mean imputation on columns the neighbours do not predict.

    A row's completion depends only on that row and the training data, bit for
    bit, whatever the rows transformed with it and the chunking. With matching
    settings (and ``mean_shrinkage=None``) the output equals scikit-learn's
    (to the rounding of the final mean) on every input whose sums of squares
    scikit-learn computes exactly: integers, and multiples of a common power
    of two, up to ``4 n_features (max |x| / 2^e)² <= 2^52`` — which is where
    ties are exact. On other data (decimals, continuous values) scikit-learn's
    Gram-form distances carry rounding error (relative ``~1e-16 |x|² / d²``),
    which can decide near-ties and, with ``1/d`` weights, moves its output at
    the ``1e-9`` level; its answer then also changes with the rows it
    transforms together. Here distances are computed in difference form,
    accurate to ``n_features`` roundings.

    With ``axis="features"`` the neighbours are columns: the training columns
    are standardised (observed mean 0, standard deviation 1), the
    nan-euclidean distances between them are learned at fit time, and a
    missing entry ``(i, j)`` gets the (weighted) mean of row ``i``'s
    standardised values in the ``n_neighbors`` columns nearest to ``j`` that
    row ``i`` observes, mapped back to column ``j``'s units. Standardising
    makes the distance between two columns a function of their correlation,
    so columns on different scales can lend to each other.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbouring rows (or columns) to average.
    weights : {"uniform", "distance"}, default="uniform"
        ``"uniform"``: plain mean. ``"distance"``: weights ``1 / d``; when
        some neighbours are at distance 0, only they count, equally
        (scikit-learn's rule).
    axis : {"samples", "features"}, default="samples"
        Whether the neighbours are rows (scikit-learn's KNNImputer) or
        columns.
    mean_shrinkage : "auto", float in [0, 1], bool or None, default="auto"
        How far each imputed value is moved from the neighbour average
        ``knn_j`` toward the column's observed mean ``mean_j``: column ``j``
        is imputed with ``mean_j + w_j (knn_j - mean_j)``, ``w_j`` in
        ``blend_weights_``. ``"auto"`` (or True): ``w_j`` is chosen at fit
        from held-out observed entries (see Notes), so that a column where
        the neighbours predict worse than the mean is imputed nearer the
        mean; columns shrunk all the way (``w_j = 0``) are named in a
        warning. A float ``s``: ``w_j = 1 - s`` in every column. None, False
        or 0: no shrinkage, ``w_j = 1`` — scikit-learn's
        :class:`sklearn.impute.KNNImputer` exactly. **The default differs
        from scikit-learn's**: pass ``mean_shrinkage=None`` for its output.
    max_donors : int or None, default=None
        Approximate mode for large tables (``axis="samples"``): only this
        many training rows, drawn at random with ``random_state`` (plus the
        first row observing any column none of them observes), serve as
        donors; every training row is still completed. Time grows with
        ``n_rows × max_donors`` instead of ``n_rows²``; the neighbours are
        then the nearest among the drawn rows, which costs accuracy where
        neighbours are sparse (measured figures on the method page,
        :ref:`knn`). None: every training row is a donor (the exact method).
    missing_values : float, default=np.nan
        Marker of the missing entries.
    keep_empty_features : bool, default=False
        Keep all-missing columns in the output (filled with 0) instead of
        dropping them, like scikit-learn's imputers.
    add_indicator : bool, default=False
        Append a :class:`~sklearn.impute.MissingIndicator` block (a 0/1
        column for each column with missing entries at fit), as
        scikit-learn's imputers do; its names are in
        ``get_feature_names_out()``.
    min_value : float or array-like of shape (n_features,), default=-np.inf
        Lower bound of the imputed values (observed entries are never
        changed); an array gives one bound per column, as in
        :class:`~sklearn.impute.IterativeImputer`.
    max_value : float or array-like of shape (n_features,), default=np.inf
        Upper bound of the imputed values.
    device : str, default="auto"
        Torch device: "auto", "cpu", "cuda", "cuda:N" or "mps".
    random_state : int, RandomState instance or None, default=None
        Seed of the entries held out by ``mean_shrinkage="auto"`` (the
        default: pass an int for reproducible output) and of the donor
        subsample when ``max_donors`` is set. Unused with
        ``mean_shrinkage=None`` (or a float) and no ``max_donors``: the method
        is then deterministic.
    verbose : int, default=0
        Show a progress bar over the chunks of rows.

    Attributes
    ----------
    n_iter_ : int
        Always 1 (no iterations).
    blend_weights_ : ndarray of shape (n_features_in_,)
        Weight ``w_j`` of the neighbour average in column ``j`` (1: plain
        KNN, 0: the column mean); NaN for columns empty at fit.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X is a DataFrame.

    Notes
    -----
    The training data (its columns that are not all missing) and its mask are
    stored as NumPy arrays; with ``axis="features"`` also the
    ``n_features × n_features`` column distances.

    **Shrinkage toward the mean** (``mean_shrinkage="auto"``). A neighbour
    average is a noisy estimate: on columns that the other columns do not
    predict (independent noise, codes of a survey, most entries missing) it
    has the variance of ``n_neighbors`` draws of the column and is worse than
    the column mean. At fit, ``n_hold = min(n_train, 1000)`` training rows
    are drawn with the fit's generator and split at random into 4 groups,
    and each row's observed entries into 5 folds. In each pass, one group's
    rows hide one fold of their entries (a fifth), stay donors for their
    other columns (a row is never its own donor for a hidden entry; an entry
    whose column would lose its last donor is not hidden), and are completed
    by the same neighbour search. ``min(5, 1000 // n_hold)`` folds are run,
    so every observed entry of the drawn rows is held out once on tables of
    up to 200 rows, a fifth of them from 1000 rows on. Hiding in a quarter
    of the rows at a time keeps the donors of a pass close to the real ones
    (a row's near-duplicate hides the same entry in the same pass with
    probability 1/20, not 1/5). With ``a = knn - mean`` and ``b = truth -
    mean`` over the ``N_j`` held-out entries of column ``j``, the
    least-squares weight ``Σab / Σa²`` is pulled toward 1 by 10
    pseudo-entries (``w_j = (N_j w_ls + 10) / (N_j + 10)``) and clipped to
    ``[0, 1]``; a column without held-out entries, or where the neighbours
    always give the mean, keeps ``w_j = 1``. The held-out work is at most
    1000 row completions against the donors (``max_donors`` included): a
    few per cent of the completion of tables of 20,000 rows and more. It
    needs no copy of the training data (the held-out entries are hidden in
    place and put back), and its chunks' temporaries are capped at
    ``min(working_memory, 4 MiB)``. The blend is per entry, so rows stay
    independent.

    **How the neighbours are found.** With ``axis="samples"`` one of two
    exact searches runs, picked by a cost model from the training mask:

    *Distances.* A pair's sum of squares is ``Σ (x_f - y_f)²`` over the
    common coordinates, added one coordinate at a time in increasing ``f``
    in float64, then ``sqrt(S / n_common * n_features)`` as scikit-learn
    does: a function of the pair alone. For rows on an exact grid (above)
    the Gram form ``Σx² + Σy² - 2Σxy`` (a matrix product) is used; it is
    then exact, so the value is the same.

    *Candidates* (the usual choice; dense or moderately sparse data). For
    rows on an exact grid, ``S`` and ``n_common`` to every training row come
    exactly from one product, ``S + c n_common`` with ``c`` a power of two
    above every ``S`` (float32 when all its partial sums stay below
    ``2**24``, as for integers 1-5 on 200 columns, else float64). The ``m``
    rows with the smallest ``S / n_common`` are the candidates, ``m ≈ 1.5
    n_neighbors / (observed fraction) + 8``, and the next one bounds all
    others. For the other rows the distances are computed in float32 as
    certified lower bounds (a rounding-error bound is subtracted), the ``m``
    smallest bounds give the candidates, and their distances are computed
    as above. Each missing entry takes its ``k`` nearest donors among the
    candidates; it is accepted only when its ``k``-th donor is provably
    nearer than every non-candidate (or all possible donors are candidates)
    and is not tied with the next donor of a different value. The others
    are resolved over all the column's donors: on grid rows from the same
    exact distances, otherwise by the donor search below; the result never
    depends on float32.

    *Donors* (very sparse data such as ratings, where columns have few
    donors). Distances of a chunk to all training rows, then for each
    missing entry a top-k over its column's donors, batched over columns
    with similar donor counts.

    *Ties.* scikit-learn keeps the donors ``np.argpartition`` puts first in
    the row of distances to the column's donors (in increasing row order);
    among equal distances that is neither the first nor the last by position
    but a deterministic function of the whole row. An entry whose ``k``-th
    and ``(k+1)``-th donors are at the same distance with different values
    is therefore resolved by calling ``np.argpartition`` on that same row
    (same values, same order, NaN where undefined), the same call
    scikit-learn makes. If the tied donors share one value, any choice gives
    the same mean. The mean adds the chosen donors in increasing row order.

    **Memory.** Besides copies of X (the validated input, the output, the
    rows' values) and of the training data (values, mask, and for the
    candidate search ``3 n_features + 1`` float32 factors per donor row),
    rows are completed in chunks, ``chunk_rows`` the largest with: grid
    rows, ``chunk_rows × (6 n_train + 6 m n_features) × 8 bytes ≤
    min(working_memory, 64 MiB)``; other rows, ``chunk_rows × (2 n_train +
    4 m n_features) × 8 bytes ≤ min(working_memory, 16 MiB per row
    block)``; donor search, ``chunk_rows × (5 n_train + g) × 8 bytes ≤
    min(working_memory, max(64 MiB, 2 × training data))`` (``g = 2 Σ_j d_j
    (1 - d_j / n_train)`` with ``d_j`` the donors of column ``j``), where
    ``working_memory`` is ``sklearn.get_config()["working_memory"]`` MiB.
    The peak extra memory of ``fit_transform`` on dense tables is thus about
    ``4 × X + 3 ×`` the training data ``+ 100 MiB`` at most, which is below
    ``10 × X`` from about 40 MB of X on (on smaller X the fixed chunk size
    dominates the ratio). With ``axis="features"``,
    ``chunk_rows × 4 n_features × 8 bytes ≤ working_memory``.

    **Time.** It is dominated by the distance products, ``O(n_rows × n_train
    × n_features)``, or ``O(n_rows × max_donors × n_features)`` with
    ``max_donors``. Neighbour averages improve with the density of donors,
    so subsampling them costs accuracy in proportion: use it when the exact
    method is out of reach, with as many donors as time allows. Measured
    memory, times and the approximation's cost are on the method page
    (:ref:`knn`).

    Examples
    --------
    ``mean_shrinkage=None`` gives scikit-learn's KNNImputer; the default
    blends each column toward its mean by a weight chosen on held-out
    entries (``blend_weights_``).

    >>> import numpy as np
    >>> from sklearn_mc import KNNImputer
    >>> X = [[1, 2, np.nan], [3, 4, 3], [np.nan, 6, 5], [8, 8, 7]]
    >>> KNNImputer(n_neighbors=2, mean_shrinkage=None).fit_transform(X)
    array([[1. , 2. , 4. ],
           [3. , 4. , 3. ],
           [5.5, 6. , 5. ],
           [8. , 8. , 7. ]])
    """

    _cli_name = "knn"
    _summary = "nan-euclidean k nearest neighbours (no model, any table)"
    # Listing order, --fast settings and fit-time model: see sklearn_mc._registry.
    _cli_order = 20
    _fast_params: dict = {}

    @staticmethod
    def _fit_cost(params: dict, n_rows: int, n_cols: int, n_observed: int) -> float:
        # All pairs of rows (or of columns), each over the other axis.
        if params.get("axis", "samples") == "samples":
            return 0.05 + 1.5e-9 * n_rows * n_rows * n_cols
        return 0.05 + 1.5e-9 * n_cols * n_cols * n_rows

    _parameter_constraints: dict = {
        **BaseMatrixImputer._parameter_constraints,
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "weights": [StrOptions({"uniform", "distance"})],
        "axis": [StrOptions({"samples", "features"})],
        "max_donors": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "mean_shrinkage": MEAN_SHRINKAGE_CONSTRAINT,
    }

    # Distances are scale-free, but their squares under- or overflow far from
    # 1: the base divides X by one power of two (exact), see _fit_scaling.
    _scaling = "magnitude"

    # Private knobs for tests: force small chunks, few candidates or one of
    # the two neighbour searches ("candidates" or "donors").
    _chunk_rows: int | None = None
    _n_candidates: int | None = None
    _search: str | None = None

    def __init__(
        self,
        *,
        n_neighbors=5,
        weights="uniform",
        axis="samples",
        mean_shrinkage="auto",
        max_donors=None,
        missing_values=np.nan,
        keep_empty_features=False,
        add_indicator=False,
        min_value=-np.inf,
        max_value=np.inf,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.axis = axis
        self.mean_shrinkage = mean_shrinkage
        self.max_donors = max_donors
        self.missing_values = missing_values
        self.keep_empty_features = keep_empty_features
        self.add_indicator = add_indicator
        self.min_value = min_value
        self.max_value = max_value
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def _fit(self, X, mask):
        counts = mask.sum(axis=0)
        # Row-major sums whatever X's layout (a DataFrame gives column-major
        # X): the blend toward the mean uses every bit of it.
        filled = np.ascontiguousarray(np.where(mask, X, 0.0))
        self._col_mean = filled.sum(axis=0) / counts
        del filled
        if self.axis == "features":
            centred = np.where(mask, X - self._col_mean, 0.0)
            std = np.sqrt((centred**2).sum(axis=0) / counts)
            std[~(std > 1e-12 * np.maximum(1.0, np.abs(self._col_mean)))] = 1.0
            self._col_std = std
            self._col_ratio = _columns.column_ratios(centred / std, mask, self._device)
        self._donor_rows = None
        if self.axis == "samples" and (
            self.max_donors is not None and self.max_donors < X.shape[0]
        ):
            keep = _subsample_donors(mask, self.max_donors, self.random_state)
            X, mask = X[keep], mask[keep]
            self._donor_rows = keep
        self._fit_X = X
        self._mask_fit_X = mask
        self._grid = _grid.grid(X[mask])
        self.n_iter_ = 1
        rule = shrinkage_rule(self.mean_shrinkage)
        auto = rule == "auto"
        if auto:
            weights = _holdout.held_out_weights(self)
        elif rule is None:
            weights = None
        else:
            weights = np.full(X.shape[1], rule)
        self._blend = weights
        store_blend_weights(self, weights)
        if auto:
            self._warn_shrunk()
        # Completing the training rows is transform's rule: a row is never
        # its own donor for a column it lacks, exactly as in scikit-learn.
        return None

    def _shrink(self, out, mask):
        """``mean + w (out - mean)`` at the missing entries, in place."""
        shrink_missing(out, mask, self._blend, self._col_mean)

    def _warn_shrunk(self):
        """Name the columns that ``mean_shrinkage="auto"`` set to the mean."""
        warn_shrunk_to_mean(
            self,
            self._blend,
            np.flatnonzero(self._valid_mask),
            "the neighbour average",
            "Set mean_shrinkage=None for scikit-learn's KNNImputer.",
        )

    # ------------------------------------------------------------ transform
    def _transform(self, X, mask):
        out = X.copy()
        rows = np.flatnonzero(~mask.all(axis=1))
        if rows.size:
            if self.axis == "samples":
                self._impute_from_rows(X, mask, rows, out)
            else:
                self._impute_from_columns(X, mask, rows, out)
            if self._blend is not None:
                self._shrink(out, mask)
        return out

    def _impute_from_rows(self, X, mask, rows, out):
        device = self._device
        dtype = compute_dtype(device)
        fit_X, fit_mask = self._fit_X, self._mask_fit_X
        n_train, n_features = fit_X.shape
        k = self.n_neighbors
        p = self.n_features_in_  # scikit-learn's factor counts empty columns
        train = _rows.Train(fit_X, fit_mask, self._col_mean, self._grid, device, dtype)
        A_all = np.where(mask[rows], X[rows], 0.0)
        if _grid.on_grid(self._grid, n_features):
            # min(e_row, e_train) is all that matters (rows that are
            # multiples of 2**e_train need no exponent scan).
            cap = self._grid[0] if self._grid[0] <= 0 else None
            grids = _grid.row_grids(A_all, mask[rows], cap)
            exact_np = _grid.rows_on_grid(
                A_all, mask[rows], self._grid, n_features, grids=grids
            )
        else:
            grids, exact_np = None, np.zeros(len(rows), dtype=bool)

        n_cand = self._n_candidates
        if n_cand is None:
            n_cand = math.ceil(1.5 * k / fit_mask.mean()) + _rows.EXTRA_CANDIDATES
        n_cand = max(1, min(n_cand, n_train))
        search = self._search or _rows.pick_search(fit_mask, n_cand, exact_np.mean())

        bar = progress(len(rows), self.verbose, "KNNImputer")
        if search == "candidates":
            # Rows on an exact grid: exact distances by one product, resolved
            # in place; the others: float32 bounds pick candidates.
            on_grid = exact_np & (dtype == torch.float64)
            grid_pos = np.flatnonzero(on_grid)
            if grid_pos.size:
                self._impute_grid_rows(
                    X, mask, rows, grid_pos, A_all, grids, train, n_cand, out, bar
                )
            other = np.flatnonzero(~on_grid)
            pos, cols = self._impute_candidate_rows(
                X, mask, rows, other, A_all, train, n_cand, out, bar
            )
        else:
            pos, cols = np.nonzero(~mask[rows])
        # The remaining entries (all of them when searching donors directly,
        # the uncertified and tied ones otherwise): distances to every
        # training row, chunked by rows.
        # Temporaries of this search stay within a few times X's size too.
        budget = min(
            sklearn.get_config()["working_memory"] * 2**20,
            max(2**26, 2 * fit_X.nbytes),
        )
        chunk = self._chunk_rows or _rows.chunk_size(
            5 * n_train + train.gather_per_row, len(rows), budget
        )
        exact = to_tensor(exact_np, device)
        for start in range(0, len(rows), chunk):
            lo, hi = np.searchsorted(pos, [start, start + chunk])
            if hi > lo:
                block = np.unique(pos[lo:hi])
                local = np.searchsorted(block, pos[lo:hi])
                est = _rows.impute_exact(
                    to_tensor(A_all[block], device, dtype),
                    to_tensor(mask[rows[block]], device),
                    exact[torch.as_tensor(block, device=device)],
                    train,
                    torch.as_tensor(local, device=device),
                    torch.as_tensor(cols[lo:hi], device=device),
                    k,
                    self.weights,
                    p,
                )
                out[rows[pos[lo:hi]], cols[lo:hi]] = to_numpy(est)
            if search != "candidates":
                bar.update(min(chunk, len(rows) - start))
        bar.close()

    def _impute_grid_rows(
        self, X, mask, rows, grid_pos, A_all, grids, train, n_cand, out, bar
    ):
        """Complete the rows ``rows[grid_pos]`` (on an exact grid) in full."""
        device = train.X.device
        dtype = train.X.dtype
        n_train, n_features = train.shape
        e_row, m_row = grids
        e_train, m_train = self._grid
        e = int(min(e_train, e_row[grid_pos].min()))
        top = max(m_train, float(m_row[grid_pos].max()))
        gram = _grid.PackedGram(train, e, top)
        chunk = self._chunk_rows or _rows.chunk_size(
            6 * n_train + 6 * n_cand * n_features,
            len(grid_pos),
            min(sklearn.get_config()["working_memory"] * 2**20, _grid.GRID_BYTES),
        )
        for start in range(0, len(grid_pos), chunk):
            at = grid_pos[start : start + chunk]
            idx = rows[at]
            ei, ej, est = _grid.impute_grid(
                to_tensor(A_all[at], device, dtype),
                to_tensor(mask[idx], device),
                gram,
                train,
                n_cand,
                self.n_neighbors,
                self.weights,
                self.n_features_in_,
            )
            out[idx[to_numpy(ei)], to_numpy(ej)] = to_numpy(est)
            bar.update(len(idx))

    def _impute_candidate_rows(self, X, mask, rows, at, A_all, train, n_cand, out, bar):
        """Complete ``rows[at]`` from float32-bounded candidates.

        Returns the positions in ``rows`` and the columns of the entries left
        for the exact search (uncertified or tied).
        """
        device = train.X.device
        dtype = train.X.dtype
        n_train, n_features = train.shape
        if not at.size:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        fit_X, fit_mask = self._fit_X, self._mask_fit_X
        # The float32 bounds see centred values scaled by a power of two
        # (exact); they only pick candidates, never a distance.
        B_c = np.where(fit_mask, fit_X - self._col_mean, 0.0)
        peak = np.abs(B_c).max()
        for start in range(0, len(at), 4096):
            idx = rows[at[start : start + 4096]]
            A_c = np.where(mask[idx], X[idx] - self._col_mean, 0.0)
            peak = max(peak, np.abs(A_c).max())
        shift = math.ceil(math.log2(peak)) if peak > 0 else 0
        inv_scale2 = 2.0 ** (2 * shift) if 2 * shift < 1020 else math.inf
        np.ldexp(B_c, -shift, out=B_c)
        bounds = _rows.LowerBounds(to_tensor(B_c, device, dtype), train.mB)
        del B_c
        chunk = self._chunk_rows or min(
            _rows.chunk_size(2 * n_train + 4 * n_cand * n_features, len(at)),
            max(16, _rows.CACHE_BYTES // (8 * (n_train + n_cand * n_features))),
        )
        pending_pos, pending_cols = [], []
        for start in range(0, len(at), chunk):
            here = at[start : start + chunk]
            idx = rows[here]
            A_c = np.where(mask[idx], X[idx] - self._col_mean, 0.0)
            ei, ej, est, todo = _rows.impute_candidates(
                to_tensor(A_all[here], device, dtype),
                to_tensor(mask[idx], device),
                to_tensor(np.ldexp(A_c, -shift), device, dtype),
                train,
                bounds,
                inv_scale2,
                n_cand,
                self.n_neighbors,
                self.weights,
                self.n_features_in_,
            )
            ei, ej, todo = to_numpy(ei), to_numpy(ej), to_numpy(todo)
            out[idx[ei], ej] = to_numpy(est)
            pending_pos.append(here[ei[todo]])
            pending_cols.append(ej[todo])
            bar.update(len(idx))
        return np.concatenate(pending_pos), np.concatenate(pending_cols)

    def _impute_from_columns(self, X, mask, rows, out):
        _columns.impute_from_columns(
            X,
            mask,
            rows,
            out,
            col_mean=self._col_mean,
            col_std=self._col_std,
            col_ratio=self._col_ratio,
            n_neighbors=self.n_neighbors,
            weights=self.weights,
            device=self._device,
            chunk_rows=self._chunk_rows,
            verbose=self.verbose,
        )


# ---------------------------------------------------------------- helpers
def _subsample_donors(mask, max_donors, random_state):
    """Sorted indices of ``max_donors`` random rows, plus a donor per column.

    Each column that none of the drawn rows observes gets its first observed
    row, so that every column keeps a donor.
    """
    rng = check_random_state(random_state)
    keep = np.zeros(mask.shape[0], dtype=bool)
    keep[rng.choice(mask.shape[0], max_donors, replace=False)] = True
    lacking = ~mask[keep].any(axis=0)
    keep[mask[:, lacking].argmax(axis=0)] = True
    return np.flatnonzero(keep)
