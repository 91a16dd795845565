"""The package's imputers, by short name: discovery, a static index and costs.

Each imputer class names itself with two class attributes, ``_cli_name`` (the
``sklearn-mc impute --method`` name) and ``_summary`` (one line of "when to
use it"). :func:`all_imputers` finds the classes the way scikit-learn's
``all_estimators`` does: it walks ``sklearn_mc.__all__`` and keeps the
:class:`~sklearn_mc._base.BaseMatrixImputer` subclasses. That imports them,
and so torch.

``sklearn-mc --help`` must answer without importing torch, so the module also
holds :data:`METHODS`, a static copy of the names and summaries;
``tests/test_registry.py`` checks that it equals what :func:`all_imputers`
discovers, so the two cannot drift apart silently.

:func:`estimate_fit_seconds` is a rough per-method cost model (seconds per
iteration as a function of the table's shape, times the iteration cap), used
by the command line to warn before a fit that may take minutes. Its constants
were measured with one torch thread on a shared two-core machine, so it errs
on the slow side, and it counts ``max_iter`` iterations although early
stopping often ends a fit sooner: it is an upper estimate, not a promise.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

__all__ = [
    "FAST_PARAMS",
    "ITERATIVE",
    "METHODS",
    "MethodInfo",
    "all_imputers",
    "estimate_fit_seconds",
    "get_imputer",
    "normalise_name",
]


@dataclass(frozen=True)
class MethodInfo:
    """What ``--help`` shows about one method (no import of the class needed).

    Attributes
    ----------
    name : str
        The ``--method`` name (the class's ``_cli_name``).
    class_name : str
        The class exported by ``sklearn_mc``.
    summary : str
        One line: what the method is and which data it suits (``_summary``).
    """

    name: str
    class_name: str
    summary: str


#: Static index of the methods, in the order the command line lists them.
#: Must equal the class attributes (checked by ``tests/test_registry.py``).
METHODS: tuple[MethodInfo, ...] = (
    MethodInfo(
        "svd",
        "SVDImputer",
        "iterative truncated SVD / SoftImpute (fast, needs a rank or picks one)",
    ),
    MethodInfo(
        "knn", "KNNImputer", "nan-euclidean k nearest neighbours (no model, any table)"
    ),
    MethodInfo(
        "sgd-mf",
        "SGDMFImputer",
        "matrix factorisation by SGD on observed entries (ratings)",
    ),
    MethodInfo(
        "deep-mf",
        "DeepMFImputer",
        "deep linear factorisation, implicit low-rank bias (images)",
    ),
    MethodInfo(
        "air-net",
        "AIRNetImputer",
        "deep factorisation + learned Laplacian regularisers (images)",
    ),
    MethodInfo(
        "mlp", "MLPImputer", "autoencoder-style MLP, inductive (tables, new rows)"
    ),
    MethodInfo(
        "dmf",
        "DMFImputer",
        "two-branch deep MF, cosine output (ratings, new users/items)",
    ),
    MethodInfo(
        "chained",
        "ChainedImputer",
        "chained equations, regressor chosen per column (tables, new rows)",
    ),
)

#: Settings that make each method's fit take seconds on a small table (fewer
#: iterations; used by ``sklearn-mc evaluate --fast`` and by the tests of the
#: command line). Keyed by ``--method`` name; applied on top of the defaults.
FAST_PARAMS: dict[str, dict] = {
    "svd": {"max_iter": 100},
    "knn": {},
    "sgd-mf": {"max_iter": 50},
    "deep-mf": {"learning_rate": 1e-2, "max_iter": 500},
    "air-net": {"learning_rate": 1e-2, "max_iter": 300},
    "mlp": {"max_iter": 50},
    "dmf": {"max_iter": 10},
    "chained": {"n_folds": 1},
}


def normalise_name(name: str) -> str:
    """``"SGD_MF"`` -> ``"sgd-mf"``: the spelling method names are compared in."""
    return name.strip().lower().replace("_", "-")


def _default_cli_name(cls: type) -> str:
    name = cls.__name__
    if name.endswith("Imputer"):
        name = name[: -len("Imputer")]
    return normalise_name(name)


def all_imputers() -> list[tuple[str, type]]:
    """``(name, class)`` of every imputer exported by ``sklearn_mc``.

    Discovered from ``sklearn_mc.__all__`` (this imports the classes, hence
    torch): every exported :class:`~sklearn_mc._base.BaseMatrixImputer`
    subclass, named by its ``_cli_name`` attribute (or, for a class that has
    none, its class name without ``Imputer``, lower case). Ordered as
    :data:`METHODS`, then any other class by name.

    Returns
    -------
    imputers : list of (str, type)
    """
    import sklearn_mc

    from ._base import BaseMatrixImputer

    found = []
    for attr in sklearn_mc.__all__:
        obj = getattr(sklearn_mc, attr)
        if inspect.isclass(obj) and issubclass(obj, BaseMatrixImputer):
            # ``vars``, not ``getattr``: a subclass must name itself, not
            # inherit its parent's name.
            name = vars(obj).get("_cli_name") or _default_cli_name(obj)
            found.append((name, obj))
    order = {info.name: k for k, info in enumerate(METHODS)}
    found.sort(key=lambda item: (order.get(item[0], len(order)), item[0]))
    return found


def get_imputer(name: str) -> type:
    """The imputer class for a ``--method`` name or a class name.

    Parameters
    ----------
    name : str
        ``"svd"``, ``"SVDImputer"``, ``"sgd_mf"``, ... (case and ``-``/``_``
        do not matter).

    Returns
    -------
    cls : type

    Raises
    ------
    ValueError
        If no exported imputer has that name; the message lists the names.
    """
    key = normalise_name(name)
    imputers = all_imputers()
    for cli_name, cls in imputers:
        if key in (cli_name, normalise_name(cls.__name__)):
            return cls
    names = ", ".join(n for n, _ in imputers)
    raise ValueError(f"unknown method {name!r}; choose one of: {names}")


# ----------------------------------------------------------------- cost model
def _iters(params: dict, default: int = 1) -> int:
    value = params.get("max_iter", default)
    return int(value) if isinstance(value, int | float) and value > 0 else default


def _cost_svd(p: dict, m: int, n: int, n_obs: int) -> float:
    # rank='auto' fits several candidate ranks on a hold-out first.
    search = 5.0 if p.get("rank", "auto") == "auto" else 1.0
    return search * _iters(p, 500) * (5e-3 + 1.4e-6 * m * n)


def _cost_knn(p: dict, m: int, n: int, n_obs: int) -> float:
    # All pairs of rows (or of columns), each over the other axis.
    if p.get("axis", "samples") == "samples":
        return 0.05 + 1.5e-9 * m * m * n
    return 0.05 + 1.5e-9 * n * n * m


def _cost_sgd_mf(p: dict, m: int, n: int, n_obs: int) -> float:
    return _iters(p, 1000) * (1.5e-2 + 3e-6 * n_obs)


def _cost_deep_mf(p: dict, m: int, n: int, n_obs: int) -> float:
    return _iters(p, 10000) * (5e-3 + 4e-7 * m * n)


def _cost_air_net(p: dict, m: int, n: int, n_obs: int) -> float:
    # The learned row and column Laplacians make a step cost m^2 + n^2.
    cap = p.get("max_laplacian_size", 2000)
    cap = cap if isinstance(cap, int) else 2000
    rows, cols = min(m, cap), min(n, cap)
    return _iters(p, 10000) * (1e-2 + 4e-7 * m * n + 4e-7 * (rows**2 + cols**2))


def _cost_mlp(p: dict, m: int, n: int, n_obs: int) -> float:
    return _iters(p, 500) * (1e-2 + 2e-4 * m * (1 + n / 100))


def _cost_dmf(p: dict, m: int, n: int, n_obs: int) -> float:
    # Each mini-batch encodes whole rows and columns: an epoch grows as m^2 n.
    return _iters(p, 200) * (5e-2 + 5e-7 * m * m * n)


def _cost_chained(p: dict, m: int, n: int, n_obs: int) -> float:
    # One set of per-column regressors per fold and one for the final fit.
    cap = p.get("max_fit_rows", 5000)
    rows = min(m, cap if isinstance(cap, int) else 5000)
    folds = p.get("n_folds", 3)
    folds = folds if isinstance(folds, int) else 3
    return 5.0 + n * (1.0 + 1e-3 * rows) * (folds + 1) / 4


_COSTS = {
    "svd": _cost_svd,
    "knn": _cost_knn,
    "sgd-mf": _cost_sgd_mf,
    "deep-mf": _cost_deep_mf,
    "air-net": _cost_air_net,
    "mlp": _cost_mlp,
    "dmf": _cost_dmf,
    "chained": _cost_chained,
}
#: methods whose cost is proportional to ``max_iter`` (an iteration cap).
ITERATIVE = frozenset({"svd", "sgd-mf", "deep-mf", "air-net", "mlp", "dmf"})


def estimate_fit_seconds(
    estimator, n_rows: int, n_cols: int, n_observed: int | None = None
) -> float | None:
    """A rough upper estimate of the seconds ``estimator.fit`` takes on CPU.

    Parameters
    ----------
    estimator : BaseMatrixImputer
        An unfitted imputer of the package (its parameters are read).
    n_rows, n_cols : int
        Shape of the table it will be fitted on.
    n_observed : int or None, default=None
        Number of observed entries (all of them when None).

    Returns
    -------
    seconds : float or None
        The estimate, counting ``max_iter`` iterations (early stopping often
        ends sooner); None for a class without a cost model.

    Examples
    --------
    >>> from sklearn_mc import AIRNetImputer
    >>> estimate_fit_seconds(AIRNetImputer(), 600, 10) > 600
    True
    """
    name = vars(type(estimator)).get("_cli_name")
    cost = _COSTS.get(name)
    if cost is None:
        return None
    n_observed = n_rows * n_cols if n_observed is None else n_observed
    seconds = cost(estimator.get_params(), int(n_rows), int(n_cols), int(n_observed))
    return float(seconds) if math.isfinite(seconds) else None
