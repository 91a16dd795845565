"""ChainedImputer: chained equations with a regressor chosen per column.

The design follows HyperImpute (Jarrett, Cebere, Liu, Curth and van der
Schaar, "HyperImpute: Generalized Iterative Imputation with Automatic Model
Selection", ICML 2022): iterative imputation by chained equations (MICE,
missForest), where every column's regressor is not fixed in advance but
chosen among a small set of candidates by its held-out error on that column's
observed entries. The candidate set here is kept small and bounded so that a
fit costs a few times scikit-learn's ``IterativeImputer(BayesianRidge())``:
the chained Bayesian ridge completion itself, extremely randomised trees (the
missForest stand-in) and k-nearest-neighbour regression fitted on top of it,
and the average of any subset of them; the result is then blended, per
column and by held-out error, with a low-rank completion (a soft-thresholded
SVD, Mazumder, Hastie and Tibshirani's SoftImpute). This module holds the
estimator and its choices on re-hidden entries; the regression rounds are in
``_chained_rounds``, the low-rank completion in ``_chained_low_rank``.
"""

from __future__ import annotations

import itertools
from numbers import Integral, Real

import numpy as np
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.neighbors import KNeighborsRegressor
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseMatrixImputer
from ._chained_low_rank import choose_blend, low_rank_complete, soft_impute_map
from ._chained_rounds import (
    apply_round,
    predict_column,
    refine_round,
    run_chain,
    second_stage,
)
from ._torch import draw_seed

#: below this many re-hidden entries (over all folds) a column's options are
#: not told apart: it keeps the linear completion.
MIN_VALIDATION_ENTRIES = 10
#: a refinement round is kept only if it lowers the held-out error of the
#: selection runs by more than this share.
REFINE_GAIN = 0.01
#: trees of the default extra-trees candidate in the selection runs: they
#: compare model kinds, which fewer trees tell apart at a fraction of the cost.
SELECTION_TREES = 20


def default_estimators(n_estimators: int = 50) -> list[tuple[str, object]]:
    """The second-stage candidates of ``estimators="auto"``.

    Parameters
    ----------
    n_estimators : int, default=50
        Trees of the extra-trees candidate (the selection runs use
        ``SELECTION_TREES``).

    Returns
    -------
    estimators : list of (str, regressor)
        Extra trees (50 trees, half the features per split, leaves of at least
        2 rows) and distance-weighted 10-nearest-neighbour regression, both
        single-threaded.
    """
    return [
        (
            "extra_trees",
            ExtraTreesRegressor(
                n_estimators=n_estimators,
                max_features=0.5,
                min_samples_leaf=2,
                n_jobs=1,
            ),
        ),
        ("knn", KNeighborsRegressor(n_neighbors=10, weights="distance", n_jobs=1)),
    ]


class ChainedImputer(BaseMatrixImputer):
    """Chained equations, then a per-column choice of regressor by held-out error.

    Missing entries start at their column mean (columns standardised). Up to
    ``max_iter`` rounds of Bayesian ridge regressions -- each column with
    missing entries on all the others, in order of increasing missingness, as
    in scikit-learn's ``IterativeImputer`` -- give a linear completion. Then
    each column's missing entries are predicted by one of: that linear
    completion, a candidate regressor (extra trees, k nearest neighbours)
    trained on the column's observed rows with the linear completion as
    features, or the average of any subset of these. The choice is made per
    column, as HyperImpute does (Jarrett et al., ICML 2022), by the error on
    observed entries that were hidden and imputed by the very same procedure
    (``n_folds`` times, ``validation_fraction`` of the observed entries of a
    subsample of at most ``selection_rows`` rows): an honest estimate, which
    a cross-validation on the completed table is not (there, other columns'
    imputed values were computed from the value being predicted).

    Then up to ``max_refine`` refinement rounds, as missForest (Stekhoven
    and Buehlmann, "MissForest -- non-parametric missing value imputation
    for mixed-type data", Bioinformatics 2012) iterates its forests: each
    column's chosen models are refitted on its observed rows with the current
    completion as features, and re-predict its missing entries. Their number
    is chosen on the same re-hidden entries: rounds are added while each
    lowers their error by more than 1 % (a stopping rule on held-out error,
    where missForest stops when the change between rounds grows).

    Last, with ``low_rank``, each column's missing entries may be blended
    with a low-rank completion of the table: a soft-thresholded SVD
    (SoftImpute: Mazumder, Hastie and Tibshirani, "Spectral Regularization
    Algorithms for Learning Large Incomplete Matrices", JMLR 2010), its
    shrinkage and each column's weight (0, 1/2 or 1) chosen on the same
    re-hidden entries, so that a column takes it only where it lowers their
    error.

    :meth:`transform` completes new rows one by one with the fitted models:
    column means, the stored linear rounds, each column's chosen models,
    then the refinement rounds, then the low-rank blend. ``fit_transform``
    returns the same completion for the training rows.

    Read more in the :ref:`User Guide <chained>`.

    Parameters
    ----------
    estimators : "auto" or list of (str, regressor), default="auto"
        Second-stage candidate regressors (scikit-learn estimators with
        ``fit`` and ``predict``; cloned per column; any name but
        ``"linear"``). ``"auto"`` is extra trees (50 trees, 20 in the
        selection runs, half the features per split, leaves of at least 2
        rows) and distance-weighted
        10-nearest-neighbour regression. An empty list keeps the
        linear completion (chained Bayesian ridge only).
    low_rank : bool, default=True
        Blend each column, where the selection runs' held-out error says so,
        with a soft-thresholded SVD completion of the standardised table (at
        most ``LOW_RANK_ITER`` iterations from the column means, on at most
        ``max_fit_rows`` rows; shrinkage among ``LOW_RANK_SHRINKAGE``; weight
        among ``LOW_RANK_WEIGHTS``), each row completed as the fixed point of
        the shrunken projection given its observed entries. False gives the
        chained completion alone.
    max_iter : int, default=10
        Maximum number of rounds of the linear chained equations.
    tol : float, default=1e-5
        Stop the linear rounds once the mean squared change of the imputed
        entries (standardised units) is below ``tol``. If the rounds reach
        ``max_iter`` first (and ``tol > 0``), a
        :class:`~sklearn.exceptions.ConvergenceWarning` says so, as
        scikit-learn's ``IterativeImputer`` does.
    n_folds : int, default=3
        Times that entries are re-hidden to choose the models.
    validation_fraction : float in (0, 1), default=0.08
        Share of the observed entries re-hidden each time (small, so that
        the selection runs see nearly the table's own share of missing
        entries: chained linear regressions degrade fast as it grows).
    selection_rows : int, default=1000
        At most this many rows (drawn at random) enter each selection run;
        bounds its cost on tall tables.
    max_fit_rows : int or None, default=2000
        At most this many observed rows (drawn at random) train each of a
        column's regressions; bounds the cost on tall tables. None uses every
        observed row.
    max_refine : int, default=3
        Most refinement rounds after the per-column choice: missForest-style
        rounds in which each column's chosen models are refitted with the
        current completion as features. The selection runs decide how many
        are run: rounds are added while they lower the error on the
        re-hidden entries by more than 1 %. 0 gives the single second stage
        on the linear completion.
    missing_values : int, float or None, default=np.nan
        The placeholder of missing entries.
    keep_empty_features : bool, default=False
        Keep all-missing columns in the output (filled with 0).
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
    device : str or torch.device, default="auto"
        Accepted for the package's contract and validated, but unused: the
        regressors are scikit-learn's and run on the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the subsamples, the re-hidden entries and the randomised
        candidates.
    verbose : int, default=0
        Print the chosen models.

    Attributes
    ----------
    linear_estimators_ : list of list of (BayesianRidge or None)
        Per linear round, per column, the fitted regression (None where a
        column had no missing entries in that round, or is too empty to
        regress; a column complete at fit has one in the last round, for new
        rows).
    estimators_ : list of dict
        Per column, the fitted second-stage candidates it uses, by name.
    chosen_ : list of tuple of str
        Per column, the names whose predictions are averaged (``"linear"``
        is the linear completion).
    selection_scores_ : list of dict
        Per column, the mean squared error (standardised units) of every
        option on the re-hidden entries (empty where too few were hidden).
    refine_scores_ : list of float
        Mean squared error on all re-hidden entries of the selection runs
        after 0, 1, ... refinement rounds (``[nan]`` where none were tried);
        ``len(refine_scores_) - 1`` rounds are run.
    refine_estimators_ : list of list of dict
        Per refinement round, per column, the refitted models by name (empty
        for columns without missing entries at fit).
    low_rank_scores_ : dict
        Mean squared error on all re-hidden entries of the low-rank
        completion alone, per shrinkage (share of the largest singular
        value); empty where it was not tried.
    low_rank_shrinkage_ : float or None
        The shrinkage chosen (None where the low-rank completion was not
        tried).
    low_rank_weights_ : ndarray of shape (n_features,)
        Per column, the weight of the low-rank completion in the blend of its
        missing entries (0: the chained completion alone).
    low_rank_blend_scores_ : list of dict
        Per column, the mean squared error on the re-hidden entries (after
        the refinement rounds) of each weight (empty where too few were
        hidden).
    low_rank_map_ : ndarray of shape (n_features, n_features) or None
        The shrunken projection ``V diag(max(d - lambda, 0) / d) V.T`` of the
        fitted soft-thresholded SVD (standardised units); None where no
        column uses the low-rank completion.
    imputation_order_ : ndarray of int
        The order in which columns are imputed within a round.
    n_iter_ : int
        Linear rounds run in the final fit (1 for a table without missing
        entries: the single pass that fits the regressions for new rows).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during ``fit`` (DataFrame input only).

    See Also
    --------
    sklearn.impute.IterativeImputer : chained equations with one regressor.
    MLPImputer : a masked neural network for the same tables.

    Notes
    -----
    Time: ``n_folds + 1`` runs of the procedure (the selection runs on at
    most ``selection_rows`` rows, with 20 trees instead of 50 in the default
    candidate), each ``max_iter`` rounds of Bayesian ridge, one fit of every
    candidate per column and up to ``max_refine`` (selection runs: one more)
    rounds of refitting each column's chosen models, on at most
    ``max_fit_rows`` rows each. The low-rank blend adds one
    soft-thresholded SVD per shrinkage per selection run and one at fit,
    each at most ``LOW_RANK_ITER`` eigendecompositions of an
    ``n_features``-square Gram matrix, and one ``n_features``-square solve
    per row with missing entries. Memory: the data, a few copies of it, and the
    fitted models (the trees and the neighbour index grow with
    ``max_fit_rows``, not with the number of rows).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mc import ChainedImputer
    >>> from sklearn_mc.datasets import make_low_rank
    >>> X = make_low_rank(100, 6, 2, random_state=0)
    >>> X_missing = X.copy()
    >>> X_missing[::4, 0] = np.nan
    >>> imputer = ChainedImputer(random_state=0)
    >>> X_filled = imputer.fit_transform(X_missing)
    >>> X_filled.shape, bool(np.isnan(X_filled).any())
    ((100, 6), False)
    >>> imputer.transform(X_missing[:2]).shape  # new rows work the same way
    (2, 6)
    """

    _cli_name = "chained"
    _summary = "chained equations, regressor chosen per column (tables, new rows)"
    # Listing order, --fast settings and fit-time model: see sklearn_mc._registry.
    _cli_order = 80
    _fast_params: dict = {"n_folds": 1}

    @staticmethod
    def _fit_cost(params: dict, n_rows: int, n_cols: int, n_observed: int) -> float:
        # One set of per-column regressors per fold and one for the final fit.
        cap = params.get("max_fit_rows", 5000)
        rows = min(n_rows, cap if isinstance(cap, int) else 5000)
        folds = params.get("n_folds", 3)
        folds = folds if isinstance(folds, int) else 3
        return 5.0 + n_cols * (1.0 + 1e-3 * rows) * (folds + 1) / 4

    _parameter_constraints: dict = {
        **BaseMatrixImputer._parameter_constraints,
        "estimators": [StrOptions({"auto"}), list],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_folds": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "selection_rows": [Interval(Integral, 2, None, closed="left")],
        "max_fit_rows": [Interval(Integral, 2, None, closed="left"), None],
        "max_refine": [Interval(Integral, 0, None, closed="left")],
        "low_rank": ["boolean"],
    }

    _scaling = "standard"

    def __init__(
        self,
        *,
        estimators="auto",
        max_iter=10,
        tol=1e-5,
        n_folds=3,
        validation_fraction=0.08,
        selection_rows=1000,
        max_fit_rows=2000,
        max_refine=3,
        low_rank=True,
        missing_values=np.nan,
        keep_empty_features=False,
        add_indicator=False,
        min_value=-np.inf,
        max_value=np.inf,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.estimators = estimators
        self.max_iter = max_iter
        self.tol = tol
        self.n_folds = n_folds
        self.validation_fraction = validation_fraction
        self.selection_rows = selection_rows
        self.max_fit_rows = max_fit_rows
        self.max_refine = max_refine
        self.low_rank = low_rank
        self.missing_values = missing_values
        self.keep_empty_features = keep_empty_features
        self.add_indicator = add_indicator
        self.min_value = min_value
        self.max_value = max_value
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ----------------------------------------------------------------- fit
    def _fit(self, X: np.ndarray, mask: np.ndarray) -> np.ndarray:
        candidates = self._candidates()
        n_samples, n_features = X.shape
        # Every random draw derives from the generator the base opened for the fit.
        rng = np.random.RandomState(draw_seed())
        n_missing = (~mask).sum(axis=0)
        self.imputation_order_ = np.argsort(n_missing, kind="stable")
        names = ["linear"] + [name for name, _ in candidates]
        options = [
            combo
            for size in range(1, len(names) + 1)
            for combo in itertools.combinations(names, size)
        ]
        trial = candidates
        if isinstance(self.estimators, str):
            trial = default_estimators(n_estimators=SELECTION_TREES)
        self.chosen_, self.selection_scores_, self.refine_scores_ = self._select(
            X, mask, trial, options, rng
        )
        n_refine = len(self.refine_scores_) - 1
        if self.verbose:
            print(
                f"[ChainedImputer] chosen models: {self.chosen_}; refinement "
                f"rounds: {n_refine} (held-out MSE by round: {self.refine_scores_}); "
                f"low-rank shrinkage {self.low_rank_shrinkage_}, weights "
                f"{self.low_rank_weights_.tolist()}"
            )
        settings = self._fit_settings(rng)
        linear, completion, fitted = run_chain(
            X, mask, candidates, self.chosen_, settings, store=True
        )
        self.linear_estimators_, self.estimators_ = linear, fitted
        self.n_iter_ = len(linear)
        self.refine_estimators_ = [
            refine_round(completion, mask, self.chosen_, candidates, settings)
            for _ in range(n_refine)
        ]
        self.low_rank_map_ = None
        if self.low_rank_weights_.any():
            # drawn last: the chained fit above keeps its random stream
            rows = np.arange(n_samples)
            if self.max_fit_rows is not None and n_samples > self.max_fit_rows:
                rows = np.sort(rng.choice(n_samples, self.max_fit_rows, replace=False))
            self.low_rank_map_ = soft_impute_map(
                X[rows], mask[rows], self.low_rank_shrinkage_
            )
            self._blend(completion, X, mask)
        return completion

    def _blend(self, completion, X, mask):
        """Blend, in place, each column's missing entries with the low-rank map's."""
        low = low_rank_complete(X, mask, self.low_rank_map_)
        for j in np.flatnonzero(self.low_rank_weights_):
            at = ~mask[:, j]
            weight = self.low_rank_weights_[j]
            completion[at, j] = (1 - weight) * completion[at, j] + weight * low[at, j]

    def _fit_settings(self, rng):
        return dict(
            rng=rng,
            order=self.imputation_order_,
            max_iter=self.max_iter,
            tol=self.tol,
            max_fit_rows=self.max_fit_rows,
        )

    def _select(self, X, mask, candidates, options, rng):
        """Per column, the option with the least error on re-hidden entries.

        Then the number of refinement rounds: rounds are run on the selection
        runs' completions (chosen options) while their error on the
        re-hidden entries falls by more than ``REFINE_GAIN``.

        Then, with ``low_rank``, the low-rank blend (``choose_blend``).

        Returns the choices, their scores and the held-out mean squared error
        (all re-hidden entries) after 0, 1, ... refinement rounds.
        """
        n_samples, n_features = X.shape
        sq_err = {combo: np.zeros(n_features) for combo in options}
        counts = np.zeros(n_features)
        every = [name for name, _ in candidates]
        runs = []
        if n_features >= 2 and (len(options) > 1 or self.low_rank):
            for _ in range(self.n_folds):
                rows = np.arange(n_samples)
                if n_samples > self.selection_rows:
                    rows = np.sort(
                        rng.choice(n_samples, self.selection_rows, replace=False)
                    )
                sub_X, sub_mask = X[rows], mask[rows]
                hide = sub_mask & (
                    rng.random_sample(sub_mask.shape) < self.validation_fraction
                )
                # keep at least two observed entries in every column
                hide &= (sub_mask & ~hide).sum(axis=0) >= 2
                if not hide.any():
                    continue
                preds = run_chain(
                    sub_X,
                    sub_mask & ~hide,
                    candidates,
                    [tuple(["linear"] + every)] * n_features,
                    self._fit_settings(rng),
                    store=False,
                    keep_all=True,
                )
                runs.append((sub_X, sub_mask & ~hide, hide, preds))
                for j in range(n_features):
                    at = hide[:, j]
                    if not at.any():
                        continue
                    counts[j] += at.sum()
                    truth = sub_X[at, j]
                    for combo in options:
                        guess = np.mean([preds[name][at, j] for name in combo], axis=0)
                        sq_err[combo][j] += np.sum((guess - truth) ** 2)
        chosen, scores = [], []
        for j in range(n_features):
            if counts[j] < MIN_VALIDATION_ENTRIES:
                chosen.append(("linear",))
                scores.append({})
                continue
            score = {"+".join(c): float(sq_err[c][j] / counts[j]) for c in options}
            best = min(options, key=lambda c: sq_err[c][j])
            chosen.append(best)
            scores.append(score)
        errors, completions = self._select_refine(runs, chosen, candidates, rng)
        (
            self.low_rank_scores_,
            self.low_rank_shrinkage_,
            self.low_rank_weights_,
            self.low_rank_blend_scores_,
        ) = choose_blend(
            runs if self.low_rank else [],
            completions,
            n_features,
            MIN_VALIDATION_ENTRIES,
        )
        return chosen, scores, errors

    def _select_refine(self, runs, chosen, candidates, rng):
        """Held-out MSE after 0, 1, ... refinement rounds (stops when no gain).

        Also returns the selection runs' completions after the rounds kept.
        """
        completions = []
        for _, train_mask, _, preds in runs:
            out = preds["linear"].copy()
            for j, combo in enumerate(chosen):
                at = ~train_mask[:, j]
                out[at, j] = np.mean([preds[name][at, j] for name in combo], axis=0)
            completions.append(out)
        if not runs or self.max_refine == 0:
            return [float("nan")], completions
        n_hidden = sum(hide.sum() for _, _, hide, _ in runs)

        def held_out():
            return float(
                sum(
                    np.sum((out[hide] - sub_X[hide]) ** 2)
                    for out, (sub_X, _, hide, _) in zip(completions, runs, strict=True)
                )
                / n_hidden
            )

        errors = [held_out()]
        settings = self._fit_settings(rng)
        while len(errors) <= self.max_refine:
            kept = [out.copy() for out in completions]
            for out, (_, train_mask, _, _) in zip(completions, runs, strict=True):
                refine_round(out, train_mask, chosen, candidates, settings)
            errors.append(held_out())
            if errors[-1] > (1 - REFINE_GAIN) * errors[-2]:
                errors.pop()  # that round did not pay: it is not run at fit
                completions = kept
                break
        return errors, completions

    def _candidates(self) -> list[tuple[str, object]]:
        if isinstance(self.estimators, str):
            return default_estimators()
        out = []
        for item in self.estimators:
            if not (
                isinstance(item, tuple)
                and len(item) == 2
                and isinstance(item[0], str)
                and hasattr(item[1], "fit")
                and hasattr(item[1], "predict")
            ):
                raise ValueError(
                    "estimators must be 'auto' or a list of (name, regressor) "
                    f"tuples with fit and predict; got the item {item!r}."
                )
            out.append(item)
        names = [name for name, _ in out]
        if len(set(names)) != len(names) or "linear" in names:
            raise ValueError(
                f"estimator names must be unique and not 'linear', got {names}."
            )
        return out

    # ----------------------------------------------------------- transform
    def _transform(self, X: np.ndarray, mask: np.ndarray) -> np.ndarray:
        filled = np.where(mask, X, 0.0)
        missing = ~mask
        order = self.imputation_order_
        for models in self.linear_estimators_:
            for j in order:
                rows = missing[:, j]
                if rows.any() and models[j] is not None:
                    filled[rows, j] = predict_column(models[j], filled[rows], j)
        out = second_stage(filled, missing, self.chosen_, self.estimators_)
        for models in self.refine_estimators_:
            apply_round(out, missing, order, self.chosen_, models)
        if self.low_rank_map_ is not None:
            self._blend(out, X, mask)
        return out
