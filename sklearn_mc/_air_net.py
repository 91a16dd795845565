"""AIR-Net: deep linear MF with adaptive Laplacian regularisers (Li et al.)."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.utils._param_validation import Interval

from ._base import warn_user
from ._deep_linear import DeepLinearImputer, right_product
from ._optim import train
from ._torch import compute_dtype, draw_seed, make_generator, to_numpy, to_tensor

# Standard deviation of the free Laplacian parameters at the start: tiny, so
# that every Laplacian starts as the uniform (complete-graph) one.
_LAPLACIAN_INIT_STD = 1e-3


def affinity(free: torch.Tensor) -> torch.Tensor:
    """Symmetric affinity ``A`` of a free square matrix ``P``, as the authors do.

    ``A₁ = softmin(P)`` row by row (each row sums to 1), ``A = (A₁ + A₁ᵀ)/2``.
    The diagonal is left in: it cancels out of the Dirichlet energy (see
    :func:`dirichlet_energy`) and is zeroed only in :func:`laplacian`.
    """
    a = torch.softmax(-free, dim=1)
    return 0.5 * (a + a.T)


def dirichlet_energy(weights: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """``tr(Yᵀ L Y) = ½ Σ_kl A_kl ‖y_k − y_l‖²`` with ``L = diag(A1) − A``.

    Computed as ``Σ_k d_k ‖y_k‖² − ⟨Y, A Y⟩``: memory ``O(k² + k·p)`` for ``Y``
    of shape ``(k, p)``, never the ``k x k x p`` differences. The diagonal of
    ``A`` contributes ``A_kk‖y_k‖² − A_kk‖y_k‖² = 0``.
    """
    degree = weights.sum(dim=1)
    return (degree * (Y * Y).sum(dim=1)).sum() - (Y * (weights @ Y)).sum()


def dirichlet_energy_factored(
    weights: torch.Tensor, F: torch.Tensor, gram: torch.Tensor
) -> torch.Tensor:
    """:func:`dirichlet_energy` of ``Y = F G`` given ``F`` and ``gram = G Gᵀ``.

    ``Σ_k d_k F_k·gram·F_kᵀ − ⟨Fᵀ A F, gram⟩``: for ``F`` of shape ``(k, w)``
    it costs ``O(k²·w + k·w²)`` instead of ``O(k²·p)`` for ``Y`` of shape
    ``(k, p)``.
    """
    degree = weights.sum(dim=1)
    quad = ((F @ gram) * F).sum(dim=1)
    return (degree * quad).sum() - ((F.T @ (weights @ F)) * gram).sum()


def laplacian(free: torch.Tensor) -> np.ndarray:
    """The Laplacian ``L = diag(A1) − A`` (zero-diagonal ``A``) as a NumPy array."""
    with torch.no_grad():
        a = affinity(free)
        a.fill_diagonal_(0.0)
        return to_numpy(torch.diag(a.sum(dim=1)) - a)


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
    not overfit the way plain deep MF does, and needs no early stopping.
    Training stops after ``max_iter`` iterations or when both regularisers
    and the fidelity change by less than ``tol`` for ``n_iter_no_change``
    iterations in a row (the paper's δ rule).

    Parameters
    ----------
    depth : int, default=3
        Number of factors of the product.
    width : int or None, default=None
        Inner dimension; None is ``min(n_samples, n_features, 256)`` (full
        width as in the paper, whose images are 240 x 240, up to 256).
    lambda_rows : float, default=1.0
        Weight of the row regulariser ``tr(Xᵀ L_r X)``, normalised by the
        number of entries (``m·n``) so that one value suits any matrix size;
        0 disables it. The authors' weight ``λ = 1e-4`` on their 240 x 240
        images with 30 % missing corresponds to ``λ·(m·n)²/|Ω| ≈ 8`` in these
        units; a smaller weight lets the regulariser fade sooner (on
        Cameraman, random 30 %: NMAE 0.052 with 1.0 vs 0.102 with 8.0 after
        4,000 iterations). On data whose rows are not similar to one another
        the regulariser does not fade and 1.0 is far too strong (a random
        rank-5 200 x 50 matrix: relative error 0.49 with 1.0, 0.016 with
        0.01); tune it with ``GridSearchCV`` there.
    lambda_cols : float, default=1.0
        Weight of the column regulariser ``tr(X L_c Xᵀ)``, same units.
    learning_rate : float, default=1e-3
        Adam step size (the authors').
    max_iter : int, default=10000
        Maximum number of full-batch iterations (the authors ran 10,000).
    tol : float, default=1e-6
        The δ of the stopping rule, in standardised units (per entry).
    n_iter_no_change : int, default=100
        Consecutive iterations the δ rule must hold.
    init_scale : float, default=1e-3
        Standard deviation of the entries of the initial product.
    max_laplacian_size : int or None, default=2000
        Largest side that gets a learned Laplacian. A Laplacian is dense,
        ``k x k`` for ``k`` rows (columns), and training keeps about ten such
        arrays: past this size that side's regulariser is dropped with a
        warning (tall tables keep only the column regulariser) instead of
        running out of memory. None means no limit.
    missing_values : float, default=np.nan
        Marker of the missing entries.
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
    device : str, default="auto"
        Torch device: "auto", "cpu", "cuda", "cuda:N" or "mps".
    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation.
    verbose : int, default=0
        Show a progress bar with the loss and both regulariser values.

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
    **Memory and time.** Those of :class:`DeepMFImputer` (``O(m·n + (m + n)·
    width + width²)``) plus ``O(m² + n²)`` for the Laplacians and their
    optimiser state (about ten ``k x k`` float64 arrays per learned side:
    quadratic in the rows and in the columns, which is what
    ``max_laplacian_size`` guards); each iteration costs ``O(m·n·width·depth
    + (m² + n²)·min(width, m, n))`` (the traces are computed from the
    factors when the width is below both sides). A 240 x 240 image takes
    about 20 ms per iteration on one CPU thread; 943 x 1682 (MovieLens-100K
    size) about 2.6 s of CPU per iteration, so the paper's 10,000 iterations
    take hours there: AIR-Net is a method for images and small tables.
    Sparse input is refused: the regularisers need the dense product.
    Columns are standardised before fitting, so the regulariser compares
    rows feature by feature on a common scale.

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

    _parameter_constraints: dict = {
        **DeepLinearImputer._parameter_constraints,
        "lambda_rows": [Interval(numbers.Real, 0, None, closed="left")],
        "lambda_cols": [Interval(numbers.Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_laplacian_size": [
            Interval(numbers.Integral, 1, None, closed="left"),
            None,
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
        init_scale=1e-3,
        max_laplacian_size=2000,
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
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.init_scale = init_scale
        self.max_laplacian_size = max_laplacian_size
        self.missing_values = missing_values
        self.keep_empty_features = keep_empty_features
        self.add_indicator = add_indicator
        self.min_value = min_value
        self.max_value = max_value
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

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

    def _fit(self, X: np.ndarray, mask: np.ndarray) -> np.ndarray:
        device = self._device
        dtype = compute_dtype(device)
        n_rows, n_cols = X.shape
        seed = draw_seed()
        generator = make_generator(seed)
        factors = self._make_factors(X.shape, generator)
        lam_r = self._side_weight("row", self.lambda_rows, n_rows)
        lam_c = self._side_weight("column", self.lambda_cols, n_cols)

        def free_matrix(size, lam):
            if lam == 0:
                return None
            p = torch.randn((size, size), generator=generator, dtype=torch.float64)
            p = (p * _LAPLACIAN_INIT_STD).to(device=device, dtype=dtype)
            return p.requires_grad_(True)

        free_r = free_matrix(n_rows, lam_r)
        free_c = free_matrix(n_cols, lam_c)
        weights = to_tensor(mask.astype(np.float64), device, dtype)
        target = to_tensor(np.where(mask, X, 0.0), device, dtype)
        n_obs = float(mask.sum())
        scale = 1.0 / (n_rows * n_cols)
        # Last values of (fidelity, row reg., column reg.), for the δ rule.
        history: list[tuple[float, float, float]] = []

        # With a narrow product X = L R (width below both sides), the traces
        # are computed from the factors: tr(Xᵀ L_r X) needs A_r L (m²·width),
        # not A_r X (m²·n); same for the columns. Same value, less work.
        width = factors[-1].shape[1]
        low_rank = len(factors) > 1 and width * (n_rows**2 + n_cols**2) < (
            n_rows * n_cols * (n_rows + n_cols)
        )

        def loss_fn(idx):
            # product(factors), keeping its right factor for the factored traces
            left, right = factors[-1], right_product(factors)
            X_hat = left if right is None else left @ right
            fidelity = ((X_hat - target) ** 2 * weights).sum() / n_obs
            loss = fidelity
            reg_r = reg_c = torch.zeros((), dtype=dtype, device=device)
            if free_r is not None:
                a_r = affinity(free_r)
                if low_rank:
                    reg_r = dirichlet_energy_factored(a_r, left, right @ right.T)
                else:
                    reg_r = dirichlet_energy(a_r, X_hat)
                reg_r = reg_r * scale
                loss = loss + lam_r * reg_r
            if free_c is not None:
                a_c = affinity(free_c)
                if low_rank:
                    reg_c = dirichlet_energy_factored(a_c, right.T, left.T @ left)
                else:
                    reg_c = dirichlet_energy(a_c, X_hat.T)
                reg_c = reg_c * scale
                loss = loss + lam_c * reg_c
            history.append(
                (float(fidelity.detach()), float(reg_r.detach()), float(reg_c.detach()))
            )
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
            tol=0.0,
            # The δ rule (stop_fn) decides convergence, not the loss plateau.
            n_iter_no_change=self.max_iter + 1,
            on_epoch_start=self._monitor_hook(factors),
            status_fn=status_fn,
            stop_fn=stop_fn,
            warn_tol=self.tol,
            verbose=self.verbose,
            desc=type(self).__name__,
        )
        result.export(self)
        self.regularizer_curve_ = np.array([h[1:] for h in history]).reshape(-1, 2)
        self.laplacian_rows_ = None if free_r is None else laplacian(free_r)
        self.laplacian_cols_ = None if free_c is None else laplacian(free_c)
        return self._store_factors(factors, X, mask)
