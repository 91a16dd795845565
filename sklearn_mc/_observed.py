"""The observed entries of a matrix: one container for dense and sparse input.

Sparse input rule
-----------------
For :mod:`scipy.sparse` input (matrices or arrays, any format: CSR, CSC, COO,
...), **stored entries are observed and absent entries are unknown**. An
explicitly stored zero is an observed rating of 0. This is the recommender
convention for rating data; it differs from scikit-learn's imputers, which
read the implicit zeros of a sparse matrix as the value 0 (and only
``missing_values`` as missing). For dense input, ``NaN`` marks the missing
entries.

:class:`ObservedEntries` holds the observed entries as ``(row, col, value)``
triplets in row-major order, so that memory is ``O(nnz)``; every sparse-aware
part of the package (the base class's sparse path, the factorisations, the
rating helpers) works on it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["ObservedEntries", "is_sparse"]


def is_sparse(X) -> bool:
    """Whether ``X`` is a :mod:`scipy.sparse` matrix or array."""
    return sp.issparse(X)


def index_dtype(shape) -> np.dtype:
    """int32 when every index of an ``(n_rows, n_cols)`` matrix fits, else int64.

    Half the memory of int64 indices for every matrix with fewer than 2³¹ rows
    and columns (int32 indexes NumPy arrays and torch tensors alike); keys that
    combine a row and a column (``row * n_cols + col``) are always formed in
    int64.
    """
    limit = np.iinfo(np.int32).max
    return np.dtype(np.int32 if max(shape, default=0) <= limit else np.int64)


#: fewer observed entries than this: no heap trimming (see :func:`trim_heap`).
TRIM_ENTRIES = 2**20


def trim_heap(nnz: int | None = None) -> None:
    """Give the C heap's freed pages back to the system (glibc's ``malloc_trim``).

    Called between the stages of the fits on observed entries (entries
    handed over, held-out split built, each sweep or epoch done): glibc
    serves arrays below its adaptive mmap threshold (up to 32 MiB, the size
    of one ``nnz``-long array at 4 million entries) from its heap and keeps
    them resident after they are freed, so each stage would start above its
    own needs and the peak would grow with the number of stages (by about
    100 MB at 4 million entries). Only for large problems (``nnz`` of at
    least :data:`TRIM_ENTRIES`, or ``None``); a no-op where the C library
    has no ``malloc_trim``. The numbers computed are not affected.
    """
    if nnz is not None and nnz < TRIM_ENTRIES:
        return
    if _LIBC[0] is None:
        try:
            import ctypes

            _LIBC[0] = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError, TypeError):
            # not glibc (macOS has no malloc_trim; Windows has no
            # CDLL(None): a TypeError)
            _LIBC[0] = False
    if _LIBC[0]:
        _LIBC[0](0)


_LIBC: list = [None]


def _float_dtype(dtype) -> np.dtype:
    """float32 stays float32; every other dtype computes in float64."""
    return (
        np.dtype(np.float32) if np.dtype(dtype) == np.float32 else np.dtype(np.float64)
    )


class ObservedEntries:
    """The observed entries of an ``(n_rows, n_cols)`` matrix, as COO triplets.

    Entries are sorted row-major (by row, then column) and unique. Build one
    with :meth:`from_dense` (``NaN`` = missing), :meth:`from_sparse` (stored
    entries = observed, explicit zeros are ratings of 0) or
    :meth:`from_coo`; the constructor itself does not validate.

    Parameters
    ----------
    rows, cols : ndarray of int, shape (nnz,)
        Row and column of each observed entry: int64, or int32 from
        ``from_dense(X, compact=True)`` when the shape allows
        (:func:`index_dtype`; a dense fit's kept entries).
    values : ndarray of float64 or float32, shape (nnz,)
        Observed values.
    shape : tuple of int
        ``(n_rows, n_cols)`` of the full matrix.

    Attributes
    ----------
    rows, cols, values, shape
        As given.
    """

    __slots__ = ("rows", "cols", "values", "shape", "_keys")

    def __init__(self, rows, cols, values, shape):
        self.rows = rows
        self.cols = cols
        self.values = values
        self.shape = (int(shape[0]), int(shape[1]))
        self._keys = None

    def __getstate__(self):
        return {name: getattr(self, name) for name in self.__slots__[:4]}

    def __setstate__(self, state):
        for name, value in state.items():
            setattr(self, name, value)
        self._keys = None

    # ------------------------------------------------------------ builders
    @classmethod
    def from_dense(cls, X, *, compact: bool = False) -> ObservedEntries:
        """The non-NaN entries of a dense 2-D array.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_cols)
            Numeric data; ``NaN`` marks missing entries.
        compact : bool, default=False
            int32 indices where the shape allows (:func:`index_dtype`): 16
            bytes per entry instead of 24. The base class keeps a dense fit's
            entries this way; the default (int64) is what the other callers
            (e.g. :func:`sklearn_mc.ratings.matrix_to_ratings`) return.

        Returns
        -------
        ObservedEntries
            Row-major.
        """
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"Expected a 2-D array, got an array of shape {X.shape}.")
        X = X.astype(_float_dtype(X.dtype), copy=False)
        if np.isinf(X).any():
            raise ValueError("X contains infinite values; only NaN may mark missing.")
        observed = ~np.isnan(X)
        n_rows, n_cols = X.shape
        # Row-major (boolean indexing reads in C order, as np.nonzero does),
        # each index array contiguous and made once (np.nonzero returns
        # strided views of one (nnz, 2) buffer); compact: in int32 where the
        # shape allows, 16 bytes per entry instead of 24 (the methods that
        # take a dense fit's entries over build their layouts from these).
        index = index_dtype(X.shape) if compact else np.dtype(np.int64)
        rows = np.broadcast_to(np.arange(n_rows, dtype=index)[:, None], X.shape)
        cols = np.broadcast_to(np.arange(n_cols, dtype=index), X.shape)
        return cls(rows[observed], cols[observed], X[observed], X.shape)

    @classmethod
    def from_sparse(cls, S) -> ObservedEntries:
        """The stored entries of a :mod:`scipy.sparse` matrix or array.

        Stored entries are observed (an explicitly stored 0 is a rating of 0);
        absent entries are unknown.

        Parameters
        ----------
        S : scipy.sparse matrix or array of shape (n_rows, n_cols)
            Any format (CSR, CSC, COO, ...).

        Returns
        -------
        ObservedEntries

        Raises
        ------
        TypeError
            If ``S`` is not sparse or not numeric.
        ValueError
            If ``S`` is not 2-D, stores NaN or infinite values, or stores the
            same (row, column) more than once (e.g. an uncoalesced COO
            matrix); sum or drop the duplicates first.
        """
        if not sp.issparse(S):
            raise TypeError(f"Expected a scipy.sparse matrix, got {type(S).__name__}.")
        if S.ndim != 2:
            raise ValueError(f"Expected a 2-D sparse matrix, got shape {S.shape}.")
        if S.dtype.kind not in "biuf":
            raise TypeError(
                f"The sparse matrix has dtype {S.dtype}; sklearn_mc needs real "
                "numeric values."
            )
        coo = S.tocoo(copy=False)
        return cls.from_coo(
            coo.row, coo.col, coo.data, S.shape, what="the sparse matrix"
        )

    @classmethod
    def from_coo(
        cls, rows, cols, values, shape, *, what: str = "the entries"
    ) -> ObservedEntries:
        """Validated entries from index and value arrays (any order).

        Parameters
        ----------
        rows, cols : array-like of int, shape (nnz,)
            Row and column indices, in ``[0, n_rows)`` and ``[0, n_cols)``.
        values : array-like of float, shape (nnz,)
            Observed values (finite).
        shape : tuple of int
            ``(n_rows, n_cols)``.
        what : str, default="the entries"
            How error messages name the input.

        Returns
        -------
        ObservedEntries
            Sorted row-major.

        Raises
        ------
        ValueError
            On mismatched lengths, indices out of range (negative included),
            non-finite values or duplicate (row, column) pairs.
        """
        rows = np.asarray(rows)
        cols = np.asarray(cols)
        values = np.asarray(values)
        n_rows, n_cols = (int(s) for s in shape)
        if not (rows.ndim == cols.ndim == values.ndim == 1):
            raise ValueError(f"rows, cols and values of {what} must be 1-D arrays.")
        if not (rows.size == cols.size == values.size):
            raise ValueError(
                f"rows, cols and values of {what} have different lengths "
                f"({rows.size}, {cols.size}, {values.size})."
            )
        for name, idx, size in (("row", rows, n_rows), ("column", cols, n_cols)):
            if idx.size and idx.dtype.kind not in "iu":
                raise TypeError(f"{name} indices of {what} must be integers.")
            if idx.size and (idx.min() < 0 or idx.max() >= size):
                bad = idx.min() if idx.min() < 0 else idx.max()
                raise ValueError(
                    f"{what} has {name} index {int(bad)} outside [0, {size})"
                    + (" (negative indices are not allowed)" if bad < 0 else "")
                    + "."
                )
        if values.size and values.dtype.kind not in "biuf":
            raise TypeError(f"values of {what} must be real numbers.")
        values = values.astype(_float_dtype(values.dtype), copy=False)
        bad = ~np.isfinite(values)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            kind = "NaN" if np.isnan(values[k]) else "infinite"
            raise ValueError(
                f"{what} stores {int(bad.sum())} non-finite value(s) (first: "
                f"{kind} at ({int(rows[k])}, {int(cols[k])})). For sparse input, "
                "stored entries are the observed ones: leave missing entries out "
                "of the sparse matrix instead of storing NaN."
            )
        rows = rows.astype(np.int64, copy=False)
        cols = cols.astype(np.int64, copy=False)
        keys = rows * n_cols + cols
        if keys.size > 1 and not (np.diff(keys) > 0).all():
            order = np.argsort(keys, kind="stable")
            keys, rows, cols = keys[order], rows[order], cols[order]
            values = values[order]
            dup = np.flatnonzero(keys[1:] == keys[:-1])
            if dup.size:
                k = int(dup[0])
                raise ValueError(
                    f"{what} stores {dup.size} duplicate (row, column) pair(s) "
                    f"(first: ({int(rows[k])}, {int(cols[k])})); each entry may be "
                    "observed once. Sum or drop duplicates first (e.g. "
                    "S.sum_duplicates() on a COO matrix, or average repeated "
                    "ratings)."
                )
        return cls(
            np.ascontiguousarray(rows),
            np.ascontiguousarray(cols),
            np.ascontiguousarray(values),
            (n_rows, n_cols),
        )

    # ------------------------------------------------------------ summaries
    @property
    def n_observed(self) -> int:
        """Number of observed entries."""
        return int(self.values.size)

    def __len__(self) -> int:
        return self.n_observed

    def __repr__(self) -> str:
        return (
            f"ObservedEntries(shape={self.shape}, n_observed={self.n_observed}, "
            f"dtype={self.values.dtype})"
        )

    def row_counts(self) -> np.ndarray:
        """Observed entries per row, int64 of shape (n_rows,)."""
        return np.bincount(self.rows, minlength=self.shape[0])

    def col_counts(self) -> np.ndarray:
        """Observed entries per column, int64 of shape (n_cols,)."""
        return np.bincount(self.cols, minlength=self.shape[1])

    def column_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-column mean and (population) std over the observed entries.

        Columns without observed entries get mean ``NaN`` and std ``NaN``.

        Returns
        -------
        mean, std : ndarray of float64, shape (n_cols,)
        """
        n_cols = self.shape[1]
        counts = self.col_counts().astype(np.float64)
        values = self.values.astype(np.float64, copy=False)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(self.cols, weights=values, minlength=n_cols) / counts
            dev = values - mean[self.cols]
            var = np.bincount(self.cols, weights=dev * dev, minlength=n_cols) / counts
        return mean, np.sqrt(var)

    # -------------------------------------------------------------- subsets
    def subset(self, index) -> ObservedEntries:
        """The entries at positions ``index`` (a sorted index or a bool mask)."""
        return ObservedEntries(
            self.rows[index], self.cols[index], self.values[index], self.shape
        )

    def with_values(self, values) -> ObservedEntries:
        """Same positions, new values (e.g. scaled)."""
        values = np.asarray(values)
        if values.shape != self.values.shape:
            raise ValueError("values must have one entry per observed entry.")
        return ObservedEntries(self.rows, self.cols, values, self.shape)

    def select_columns(self, keep: np.ndarray) -> ObservedEntries:
        """Keep the columns where the bool mask ``keep`` is True, renumbered."""
        keep = np.asarray(keep, dtype=bool)
        new_index = (np.cumsum(keep) - 1).astype(self.cols.dtype)
        take = keep[self.cols]
        return ObservedEntries(
            self.rows[take],
            new_index[self.cols[take]],
            self.values[take],
            (self.shape[0], int(keep.sum())),
        )

    def row_slice(self, start: int, stop: int) -> ObservedEntries:
        """The entries of rows ``start:stop``, rows renumbered from 0."""
        lo, hi = np.searchsorted(self.rows, [start, stop])
        stop = min(stop, self.shape[0])
        return ObservedEntries(
            self.rows[lo:hi] - start,
            self.cols[lo:hi],
            self.values[lo:hi],
            (max(stop - start, 0), self.shape[1]),
        )

    def split(self, fraction: float, random_state=None):
        """One seeded train / validation split of the observed entries.

        The package's single hold-out rule (the same as
        :func:`sklearn_mc.model_selection.split_indices` on the row-major
        entries, so that dense and sparse inputs of the same data hold out the
        same entries).

        Parameters
        ----------
        fraction : float in [0, 1)
            Share of the entries held out.
        random_state : int, RandomState instance or None, default=None
            Seed of the draw.

        Returns
        -------
        train, validation : ObservedEntries
        """
        from .model_selection import split_indices

        kept, held = split_indices(self.n_observed, fraction, random_state)
        return self.subset(kept), self.subset(held)

    # ------------------------------------------------------------- lookups
    def lookup(self, rows, cols) -> tuple[np.ndarray, np.ndarray]:
        """Observed values at the requested pairs.

        Parameters
        ----------
        rows, cols : ndarray of int, shape (n,)
            Pairs to look up (in range).

        Returns
        -------
        found : ndarray of bool, shape (n,)
            Whether the pair is observed.
        values : ndarray of float, shape (n,)
            Its observed value where ``found``, 0 elsewhere.
        """
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        n_cols = self.shape[1]
        if self._keys is None:  # row-major, so sorted; cached for repeat calls
            # int64 keys whatever the index dtype (int32 would overflow)
            self._keys = self.rows.astype(np.int64) * n_cols + self.cols
        keys = self._keys
        query = rows * n_cols + cols
        if keys.size == 0:
            return np.zeros(query.shape, dtype=bool), np.zeros(query.shape)
        if query.size > 4096:
            # Sorted queries walk the keys in order (cache-friendly): 10x
            # faster than random probes for 10⁶ pairs into 10⁷ keys.
            order = np.argsort(query, kind="stable")
            pos = np.empty_like(order)
            pos[order] = np.searchsorted(keys, query[order])
        else:
            pos = np.searchsorted(keys, query)
        pos = np.minimum(pos, keys.size - 1)
        found = keys[pos] == query
        values = np.where(found, self.values[pos], 0.0)
        return found, values

    # ---------------------------------------------------------- conversions
    def to_csr(self) -> sp.csr_array:
        """A :class:`scipy.sparse.csr_array` of the entries."""
        return sp.csr_array((self.values, (self.rows, self.cols)), shape=self.shape)

    def to_csc(self) -> sp.csc_array:
        """A :class:`scipy.sparse.csc_array` of the entries."""
        return sp.csc_array((self.values, (self.rows, self.cols)), shape=self.shape)

    def to_dense(self, fill: float = np.nan) -> np.ndarray:
        """Dense array with ``fill`` at the unobserved entries (small data only)."""
        out = np.full(self.shape, fill, dtype=np.float64)
        out[self.rows, self.cols] = self.values
        return out

    def to_torch(self, device=None, dtype: torch.dtype | None = None):
        """``(rows, cols, values)`` as torch tensors on ``device``.

        Parameters
        ----------
        device : torch.device or str or None
            Target device (CPU when None).
        dtype : torch.dtype or None
            dtype of ``values`` (float64 when None).

        Returns
        -------
        rows, cols : torch.Tensor of int64
            (int64 whatever the dtype of ``rows`` and ``cols``).
        values : torch.Tensor
        """
        device = torch.device("cpu") if device is None else torch.device(device)
        dtype = torch.float64 if dtype is None else dtype
        return (
            torch.as_tensor(self.rows, device=device).long(),
            torch.as_tensor(self.cols, device=device).long(),
            torch.as_tensor(self.values, device=device).to(dtype),
        )
