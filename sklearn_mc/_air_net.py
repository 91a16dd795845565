"""AIR-Net: deep linear MF with adaptive Laplacian regularisers (Li et al.)."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._air_net_laplacian import affinity, free_matrix, laplacian, regularisers
from ._base import warn_user
from ._deep_linear import (
    DeepLinearImputer,
    dense_targets,
    masked_error,
    predict_entries_chunked,
    right_product,
    train_dtype,
)
from ._gradient import fill_parameter_docs
from ._optim import train
from ._registry import _iters
from ._torch import draw_seed, make_generator
from .model_selection import split_indices

#: ``early_stopping="auto"`` holds entries out from matrices with more entries
#: than this (about 500 x 500). The papers' matrices (images up to 240 x 240,
#: 57,600 entries) stay below and get the authors' schedule; above it, 10,000
#: full-batch iterations would take tens of minutes to hours. Above it the
#: default width is also capped lower (``AUTO_LARGE_WIDTH``).
AUTO_EARLY_STOPPING_SIZE = 250_000
#: ``early_stopping="auto"`` also holds entries out from matrices with a side
#: shorter than this: tables of a few dozen columns, unlike the papers' images
#: and community matrices (96 to 240 rows and columns), where the authors'
#: 10,000 iterations take minutes and the held-out error stops improving long
#: before.
AUTO_TABLE_SIDE = 64
#: default width cap above ``AUTO_EARLY_STOPPING_SIZE`` entries (below:
#: ``min(m, n, 256)``, the full width of the paper): a step costs
#: ``O((m·n + m² + n²)·width)``.
AUTO_LARGE_WIDTH = 64
#: ``laplacian_interval="auto"`` updates the Laplacians every this many
#: iterations where ``early_stopping="auto"`` is on (large matrices, tables);
#: every iteration elsewhere, as the authors.
AUTO_LAPLACIAN_INTERVAL = 5
# Relative improvement of the held-out error that counts as progress.
_VALIDATION_TOL = 1e-4
# Patience of early stopping on matrices up to AUTO_EARLY_STOPPING_SIZE, in
# units of 1 / learning_rate iterations (see _validation).
_SMALL_PATIENCE = 0.5
# Held-out error is checked at most this often (iterations).
_MAX_VALIDATION_INTERVAL = 10


@fill_parameter_docs
class AIRNetImputer(DeepLinearImputer):
    """Complete a matrix with AIR-Net: deep linear MF plus adaptive regularisers.

    The completion is the deep linear product ``X = W[L-1] ... W[0]`` of
    :class:`DeepMFImputer` (implicit low-rank bias), trained jointly with two
    learned graph Laplacians that reward similar rows and similar columns
    (Li, Xu, Zhang et al., *Adaptive and implicit regularization for matrix
    completion*). The loss is::

        mean over observed (i, j) of (X_ij − Y_ij)²
          + lambda_rows · tr(Xᵀ L_r X) / (m·n) + lambda_cols · tr(X L_c Xᵀ) / (m·n)

    Each Laplacian comes from a free square matrix ``P`` as in the authors'
    code: ``A₁ = softmin(P)`` row-wise, ``A = (A₁ + A₁ᵀ)/2`` with zero
    diagonal, ``L = diag(A·1) − A``. All parameters are trained together by
    Adam from a tiny start. The Laplacians first spread their weight over
    whole groups of similar rows (columns), then concentrate it on the
    nearest ones, so the regularisers fade as training goes on: AIR-Net does
    not overfit the way plain deep MF does on images and needs no early
    stopping there. Training stops after ``max_iter`` iterations or when
    both regularisers and the fidelity change by less than ``tol`` for
    ``n_iter_no_change`` iterations in a row (the paper's δ rule). Outside
    the papers' setting (matrices of more than 250,000 entries, and tables
    with a side shorter than 64) the defaults switch to a faster schedule
    that keeps such fits to seconds or minutes: early stopping on held-out
    observed entries (``early_stopping="auto"``), the Laplacians updated
    every 5 iterations (``laplacian_interval="auto"``) and, above 250,000
    entries, a default width of at most 64.

    Parameters
    ----------
    depth : int, default=3
        Number of factors of the product.
    width : int or None, default=None
        Inner dimension; None is ``min(n_samples, n_features, 256)`` (full
        width as in the paper, whose images are 240 x 240, up to 256) on
        matrices of up to 250,000 entries and ``min(n_samples, n_features,
        64)`` above, where every step costs ``O((m·n + m² + n²)·width)``.
    lambda_rows : float, default=1.0
        Weight of the row regulariser ``tr(Xᵀ L_r X)``, normalised by the
        number of entries (``m·n``) so that one value suits any matrix size;
        0 disables it. The authors' weight ``λ = 1e-4`` on their 240 x 240
        images with 30 % missing corresponds to ``λ·(m·n)²/|Ω| ≈ 8`` in these
        units; the smaller default lets the regulariser fade sooner. On data
        whose rows are not similar to one another (generic low-rank
        matrices, ratings) the regulariser does not fade and 1.0 is too
        strong: tune it with ``GridSearchCV`` there (measured figures on the
        method page, :ref:`air_net`).
    lambda_cols : float, default=1.0
        Weight of the column regulariser ``tr(X L_c Xᵀ)``, same units.
    {learning_rate}
        The update rule is Adam, at the authors' step size by default.
    {max_iter}
        AIR-Net trains full batch (the authors ran 10,000 iterations).
    tol : float, default=1e-6
        The δ of the stopping rule, in standardised units (per entry).
    n_iter_no_change : int, default=100
        Consecutive iterations the δ rule must hold; also the patience of
        early stopping, in iterations (the held-out error is checked every
        ``min(10, n_iter_no_change // 10)`` iterations). When
        ``early_stopping="auto"`` turns it on for a table (up to 250,000
        entries) the patience is at least ``0.5 / learning_rate`` iterations
        (500 at the default; at most 2,000): there the held-out error can
        rise for a while as the Laplacians concentrate before it falls.
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the observed entries, stop when
        their error has not improved (by a relative 1e-4) for
        ``n_iter_no_change`` iterations and keep the parameters of the best
        check. ``"auto"`` turns it on for matrices of more than 250,000
        entries (about 500 x 500) and for tables with a side shorter than
        64 (columns of a data table), and off for the others, where the
        authors' schedule (the final iterate of up to 10,000 iterations) is
        kept: on images the held-out error rises for about a thousand
        iterations while the Laplacians concentrate and falls far lower
        afterwards (see the curve on the method page), which early stopping
        would cut short.
        Above that size 10,000 full-batch iterations take tens of minutes
        to hours; pass ``early_stopping=False`` there to pay that for
        images.
    {validation_fraction}
    init_scale : float, default=1e-3
        Standard deviation of the entries of the initial product.
    max_laplacian_size : int or None, default=2000
        Largest side that gets a learned Laplacian. A Laplacian is dense,
        ``k x k`` for ``k`` rows (columns), and training keeps about ten such
        arrays: past this size that side's regulariser is dropped with a
        warning (tall tables keep only the column regulariser) instead of
        running out of memory. None means no limit.
    laplacian_interval : int or "auto", default="auto"
        Iterations between two Laplacian steps. At a Laplacian step the
        affinities are formed with their gradients (the ``k x k`` softmax,
        products and backward pass) and both free matrices take an Adam
        step of ``laplacian_interval`` times the learning rate, so the
        Laplacians keep the schedule of an update at every iteration; in
        between, the factors get the regulariser gradient of the last
        Laplacian step (a lazy regulariser: no ``k x k`` work at all).
        ``"auto"`` is 5 where early stopping is on (``early_stopping=True``,
        or ``"auto"`` on large matrices and tables) and 1 (every iteration,
        the authors') where it is off: where ``m² + n²`` is far above
        ``m·n`` (tables of a few columns) the Laplacian steps are most of an
        iteration's cost.
    {missing_values}
    {keep_empty_features}
    {add_indicator}
    {min_value}
    {max_value}
    {device}
    {random_state}
    {verbose}
        The bar also shows the data fit and both regulariser values.

    Attributes
    ----------
    laplacian_rows_ : ndarray of shape (n_samples, n_samples) or None
        Learned row Laplacian ``L_r`` (None when that side is disabled or too
        large). Plot it with ``plt.imshow`` as in the paper's Fig. 1.
    laplacian_cols_ : ndarray of shape (n_valid_features, n_valid_features) or None
        Learned column Laplacian ``L_c``.
    factors_ : list of ndarray
        ``[W[0], ..., W[L-1]]`` in standardised units.
    components_ : ndarray of shape (n_components, n_valid_features)
        Fold-in basis derived from the right product (see Notes).
    noise_variance_ : float
        Noise variance of the fold-in (training residual, floored).
    n_iter_ : int
        Iterations run.
    loss_curve_ : list of float
        Total loss per iteration.
    regularizer_curve_ : ndarray of shape (n_evaluations, 2)
        Normalised row and column regulariser values at every loss
        evaluation (one per iteration, plus any rewound after divergence).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X is a DataFrame.

    See Also
    --------
    DeepMFImputer : the same product without the adaptive regularisers.

    Notes
    -----
    **Memory and time.** With ``m`` rows, ``n`` columns and ``w = width``:
    the fidelity term needs three ``m x n`` arrays, the training mask (bool),
    the targets and one buffer for the product's residual and its gradient
    (9 bytes per entry in float32, beside the float64 input copies of
    the common pipeline, 16 bytes per entry); the product ``X`` itself is
    never formed during training. Both traces are computed from the factors
    (``tr(Xᵀ L_r X)`` from ``A_r W[L-1]``, ``tr(X L_c Xᵀ)`` from
    ``A_c Rᵀ``), so the regularisers add no ``m x n`` array; each learned
    side of size ``k`` keeps about a dozen ``k x k`` arrays (its free
    matrix, gradient, Adam's moments, the training loop's snapshots, the
    affinity and its backward pass): ``O(m² + n²)`` memory, quadratic in
    each side, which ``max_laplacian_size`` guards. In all
    ``O(m·n + m² + n² + (m + n)·w)``. An iteration costs three
    ``m x w x n`` products (fidelity) and three ``k x k x w`` products per
    learned side, plus ``k²`` softmaxes:
    ``O(m·n·w + (m² + n²)·w)``; with ``laplacian_interval = t`` the
    ``(m² + n²)·w`` part is paid once every ``t`` iterations (memory is
    unchanged: the free matrices, their Adam moments and the lazy
    gradients stay ``O(m² + n²)``). Time grows linearly in rows and
    columns for the fidelity (``m·n·w``) and quadratically in each side for
    the regulariser. Measured memory and times are on the method page
    (:ref:`air_net`). Sparse input is refused: the fidelity is computed on
    the dense product. Above 250,000 entries the factors and Laplacians are
    trained in float32 (float64 below); fitted attributes and outputs are
    float64. Columns are standardised before
    fitting, so the regulariser compares rows feature by feature on a common
    scale.

    **Inductive rule.** :meth:`transform` folds each row in against the
    learned right product ``R = W[L-2] ... W[0]`` exactly as
    :class:`DeepMFImputer` does (ridge posterior mean in the learned row
    space). The row Laplacian describes the training rows only and is not
    used for new rows; the column Laplacian acts through ``R``, which it
    shaped during training.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mc import AIRNetImputer
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(3, 20)[rng.randint(3, size=30)]  # rows in three groups
    >>> X_missing = np.where(rng.rand(*X.shape) < 0.3, np.nan, X)
    >>> imp = AIRNetImputer(learning_rate=1e-2, max_iter=500, random_state=0)
    >>> X_filled = imp.fit_transform(X_missing)
    >>> hidden = np.isnan(X_missing)
    >>> bool(np.abs(X_filled - X)[hidden].mean() < 0.1 * np.abs(X).mean())
    True
    >>> imp.laplacian_rows_.shape, imp.laplacian_cols_.shape
    ((30, 30), (20, 20))
    """

    _cli_name = "air-net"
    _summary = "deep factorisation + learned Laplacian regularisers (images)"
    # Listing order, --fast settings and fit-time model: see sklearn_mc._registry.
    _cli_order = 50
    _fast_params: dict = {"learning_rate": 1e-2, "max_iter": 300}
    _iterative = True

    @staticmethod
    def _fit_cost(params: dict, n_rows: int, n_cols: int, n_observed: int) -> float:
        # The learned row and column Laplacians make a step cost m^2 + n^2.
        cap = params.get("max_laplacian_size", 2000)
        cap = cap if isinstance(cap, int) else 2000
        rows, cols = min(n_rows, cap), min(n_cols, cap)
        step = 1e-2 + 4e-7 * n_rows * n_cols + 4e-7 * (rows**2 + cols**2)
        return _iters(params, 10000) * step

    _parameter_constraints: dict = {
        **DeepLinearImputer._parameter_constraints,
        "lambda_rows": [Interval(numbers.Real, 0, None, closed="left")],
        "lambda_cols": [Interval(numbers.Real, 0, None, closed="left")],
        "early_stopping": [
            *DeepLinearImputer._parameter_constraints["early_stopping"],
            StrOptions({"auto"}),
        ],
        "max_laplacian_size": [
            Interval(numbers.Integral, 1, None, closed="left"),
            None,
        ],
        "laplacian_interval": [
            Interval(numbers.Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
    }

    def __init__(
        self,
        *,
        depth=3,
        width=None,
        lambda_rows=1.0,
        lambda_cols=1.0,
        learning_rate=1e-3,
        max_iter=10000,
        tol=1e-6,
        n_iter_no_change=100,
        early_stopping="auto",
        validation_fraction=0.1,
        init_scale=1e-3,
        max_laplacian_size=2000,
        laplacian_interval="auto",
        missing_values=np.nan,
        keep_empty_features=False,
        add_indicator=False,
        min_value=-np.inf,
        max_value=np.inf,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.depth = depth
        self.width = width
        self.lambda_rows = lambda_rows
        self.lambda_cols = lambda_cols
        self.init_scale = init_scale
        self.max_laplacian_size = max_laplacian_size
        self.laplacian_interval = laplacian_interval
        super().__init__(
            learning_rate=learning_rate,
            max_iter=max_iter,
            tol=tol,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            missing_values=missing_values,
            keep_empty_features=keep_empty_features,
            add_indicator=add_indicator,
            min_value=min_value,
            max_value=max_value,
            device=device,
            random_state=random_state,
            verbose=verbose,
        )

    def _side_weight(self, name: str, lam: float, size: int) -> float:
        """The regulariser weight of one side after the size guard."""
        limit = self.max_laplacian_size
        if lam > 0 and limit is not None and size > limit:
            warn_user(
                f"AIRNetImputer: the {name} Laplacian would be {size} x {size} "
                f"(max_laplacian_size={limit}); the {name} regulariser is "
                "dropped. Raise max_laplacian_size if memory allows."
            )
            return 0.0
        return float(lam)

    def _laplacian_interval(self, shape) -> int:
        """Iterations between two Laplacian steps (``laplacian_interval``)."""
        if self.laplacian_interval == "auto":
            # The authors' schedule (every step) where it is kept, that is
            # where early stopping is off: the papers' matrices.
            return AUTO_LAPLACIAN_INTERVAL if self._early_stopping(shape) else 1
        return int(self.laplacian_interval)

    def _early_stopping(self, shape) -> bool:
        if self.early_stopping == "auto":
            large = shape[0] * shape[1] > AUTO_EARLY_STOPPING_SIZE
            return large or min(shape) < AUTO_TABLE_SIDE
        return bool(self.early_stopping)

    def _make_factors(self, shape, generator) -> list[torch.Tensor]:
        width = self.width
        if width is None and shape[0] * shape[1] > AUTO_EARLY_STOPPING_SIZE:
            width = min(*shape, AUTO_LARGE_WIDTH)
        return super()._make_factors(shape, generator, width=width)

    def _validation(self, X, mask, factors):
        """Training mask, held-out error, check interval and patience (checks).

        Without held-out entries the patience is None: no plateau rule, the
        δ rule (``stop_fn``) alone decides convergence.
        """
        if not self._early_stopping(X.shape) or mask.sum() < 2:
            return mask, None, 1, None
        seed = draw_seed()
        flat = np.flatnonzero(mask)
        _, val_idx = split_indices(flat.size, self.validation_fraction, seed)
        held = flat[val_idx]
        del flat
        keep = mask.copy()
        keep.flat[held] = False
        rows, cols = np.divmod(held, X.shape[1])
        device = self._device
        v_rows = torch.as_tensor(rows, device=device)
        v_cols = torch.as_tensor(cols, device=device)
        dtype = train_dtype(X.shape, device)
        v_vals = torch.as_tensor(X[rows, cols], device=device, dtype=dtype)

        def validation_fn():
            pred = predict_entries_chunked(factors, v_rows, v_cols)
            return float(((pred - v_vals) ** 2).mean())

        interval = max(1, min(_MAX_VALIDATION_INTERVAL, self.n_iter_no_change // 10))
        patience = self.n_iter_no_change
        small = X.shape[0] * X.shape[1] <= AUTO_EARLY_STOPPING_SIZE
        if self.early_stopping == "auto" and small:
            # Tables: the held-out error may rise while the Laplacians
            # concentrate (about 1 / learning_rate iterations) before it
            # falls; wait for half of that (at most 2,000 iterations),
            # which costs little at this size.
            wait = min(int(_SMALL_PATIENCE / self.learning_rate), 2000)
            patience = max(patience, wait)
        return keep, validation_fn, interval, max(1, patience // interval)

    def _fit(self, X: np.ndarray, mask: np.ndarray) -> np.ndarray:
        device = self._device
        dtype = train_dtype(X.shape, device)
        n_rows, n_cols = X.shape
        seed = draw_seed()
        generator = make_generator(seed)
        factors = self._make_factors(X.shape, generator)
        lam_r = self._side_weight("row", self.lambda_rows, n_rows)
        lam_c = self._side_weight("column", self.lambda_cols, n_cols)

        # Iterations between two Laplacian steps (1: every step, the authors').
        every = self._laplacian_interval(X.shape) if lam_r or lam_c else 1

        # Stored divided by `every` (see free_matrix and loss_fn).
        free_r = free_matrix(n_rows, lam_r, every, generator, device, dtype)
        free_c = free_matrix(n_cols, lam_c, every, generator, device, dtype)
        # Training data, in a dict so that it is released before the
        # completion is formed.
        data: dict = {}
        keep, validation_fn, interval, patience = self._validation(X, mask, factors)
        data["unused"], data["target"] = dense_targets(X, keep, device, dtype)
        n_obs = float(keep.sum())
        del keep
        scale = 1.0 / (n_rows * n_cols)  # the regularisers per entry
        # Last values of (fidelity, row reg., column reg.), for the δ rule.
        history: list[tuple[float, float, float]] = []
        zero = torch.zeros((), dtype=dtype, device=device)

        frees = [p for p in (free_r, free_c) if p is not None]
        # Lazy regulariser (every > 1): its value and its gradients with
        # respect to (L, R, free matrices) at the last Laplacian step.
        lazy: dict = {}
        calls = [0]

        def refresh(left, right) -> None:
            # A Laplacian step: the regulariser and all its gradients.
            leaves = [left.detach().requires_grad_(True)]
            if right is not None:
                leaves.append(right.detach().requires_grad_(True))
            r_d = leaves[1] if right is not None else None
            a_r = None if free_r is None else affinity(free_r * every)
            a_c = None if free_c is None else affinity(free_c * every)
            reg_r, reg_c = regularisers(leaves[0], r_d, a_r, a_c, scale, zero)
            total = lam_r * reg_r + lam_c * reg_c
            lazy["grads"] = torch.autograd.grad(total, leaves + frees)
            lazy["value"] = total.detach()
            lazy["regs"] = (float(reg_r.detach()), float(reg_c.detach()))

        def loss_fn(idx):
            # X = L R is never formed: the fidelity's residual lives in one
            # n_rows x n_cols buffer (masked_error).
            left, right = factors[-1], right_product(factors)
            fidelity = masked_error(
                factors, data["target"], data["unused"], 1.0 / n_obs, right=right
            )
            if every == 1 or not torch.is_grad_enabled():
                # Every step (the authors'), or an evaluation without a step
                # (the loop's final loss): the exact regulariser.
                a_r = None if free_r is None else affinity(free_r * every)
                a_c = None if free_c is None else affinity(free_c * every)
                reg_r, reg_c = regularisers(left, right, a_r, a_c, scale, zero)
                loss = fidelity + lam_r * reg_r + lam_c * reg_c
                regs = (float(reg_r.detach()), float(reg_c.detach()))
            else:
                # Between two Laplacian steps the regulariser's gradient of
                # the last one is reused (a linear surrogate with that
                # gradient and the last value): no k x k work. The free
                # matrices get a gradient (an Adam step) at Laplacian steps
                # only.
                fresh = calls[0] % every == 0 or not lazy
                if fresh:
                    refresh(left, right)
                grads = lazy["grads"]
                tensors = [left] if right is None else [left, right]
                if fresh:
                    tensors = tensors + frees
                surrogate = sum(
                    (t * g).sum()
                    for t, g in zip(tensors, grads[: len(tensors)], strict=True)
                )
                loss = fidelity + (surrogate - surrogate.detach() + lazy["value"])
                regs = lazy["regs"]
            calls[0] += 1
            history.append((float(fidelity.detach()), *regs))
            return loss

        quiet = [0]

        def stop_fn(epoch: int) -> bool:
            # δ rule: both regularisers (and the fit) settled for a while.
            if len(history) < 2:
                return False
            prev, last = history[-2], history[-1]
            settled = all(
                abs(a - b) < self.tol for a, b in zip(prev, last, strict=True)
            )
            quiet[0] = quiet[0] + 1 if settled else 0
            return quiet[0] >= self.n_iter_no_change

        def status_fn() -> dict:
            fid, r, c = history[-1]
            return {
                "data fit": f"{fid:.3g}",
                "row regulariser": f"{r:.3g}",
                "column regulariser": f"{c:.3g}",
            }

        params = factors + [p for p in (free_r, free_c) if p is not None]
        result = train(
            params,
            loss_fn,
            n_samples=int(n_obs),
            batch_size=None,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            generator=generator,
            optimizer="adam",
            # The δ rule (stop_fn) decides convergence, not the loss plateau
            # (patience None without held-out entries); with held-out
            # entries, so does their error's plateau, at this tolerance.
            tol=_VALIDATION_TOL,
            n_iter_no_change=patience,
            validation_fn=validation_fn,
            validation_interval=interval,
            on_epoch_start=self._monitor_hook(factors, X.shape),
            status_fn=status_fn,
            stop_fn=stop_fn,
            warn_tol=self.tol,
            verbose=self.verbose,
            desc=type(self).__name__,
        )
        result.export(self)
        data.clear()
        self.regularizer_curve_ = np.array([h[1:] for h in history]).reshape(-1, 2)
        self.laplacian_rows_ = None if free_r is None else laplacian(free_r * every)
        self.laplacian_cols_ = None if free_c is None else laplacian(free_c * every)
        return self._store_factors(factors, X, mask)
