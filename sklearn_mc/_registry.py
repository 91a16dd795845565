"""The package's imputers, by short name: discovery, a static index and costs.

Everything the command line needs to know about an imputer is declared in its
own class, so adding one means writing the class and exporting it from
``sklearn_mc/__init__.py``; this module holds no per-method table. The class
attributes, all optional and all read without instantiating the class:

``_cli_name`` and ``_summary``
    The ``sklearn-mc impute --method`` name and one line of "when to use it".
    Literals, read with :func:`vars`: a subclass names itself, it does not
    inherit its parent's name. Without ``_cli_name`` a class is named after
    itself (``MedianImputer`` -> ``median``); without ``_summary`` its line
    in ``--help`` is empty.
``_cli_order``
    A number that places the method in the listings (``--help``,
    ``sklearn-mc methods``, the docs); classes without one follow, by name.
``_fast_params``
    A dict of settings that fit in seconds on a small table (fewer
    iterations), applied on top of the defaults by ``sklearn-mc evaluate
    --fast`` and by the tests; see :func:`fast_params`.
``_fit_cost(params, n_rows, n_cols, n_observed)``
    A static method: a rough upper estimate of the seconds a fit with
    ``params`` takes on CPU; see :func:`estimate_fit_seconds`.
``_iterative``
    True when that cost is proportional to ``max_iter`` (an iteration cap),
    so that the command line can suggest a smaller ``max_iter`` for a slow
    fit.

:func:`all_imputers` finds the classes the way scikit-learn's
``all_estimators`` does: it walks ``sklearn_mc.__all__`` and keeps the
:class:`~sklearn_mc._base.BaseMatrixImputer` subclasses. That imports them,
and so torch. ``sklearn-mc --help`` must answer without importing torch, so
:data:`METHODS` (computed on first use) reads the same names and summaries
from the source instead: it parses ``sklearn_mc/__init__.py`` (``__all__``
and the ``_LAZY_ATTRS`` map from exported name to module) and each mapped
module with :mod:`ast`, following the base classes through the package's
imports to tell imputers from other exports. ``tests/test_registry.py``
checks that it equals what :func:`all_imputers` discovers.

The cost models' constants were measured with one torch thread on a shared
two-core machine, so they err on the slow side, and they count ``max_iter``
iterations although early stopping often ends a fit sooner: an estimate is an
upper one, not a promise.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import math
from dataclasses import dataclass

__all__ = [
    "METHODS",
    "MethodInfo",
    "all_imputers",
    "estimate_fit_seconds",
    "fast_params",
    "get_imputer",
    "is_iterative",
    "normalise_name",
]

_PACKAGE = __name__.rpartition(".")[0]
#: the class every imputer derives from, as (module, class name).
_ROOT = (f"{_PACKAGE}._base", "BaseMatrixImputer")
#: the class attributes the static index reads.
_INDEX_ATTRS = frozenset({"_cli_name", "_summary", "_cli_order"})


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


def normalise_name(name: str) -> str:
    """``"SGD_MF"`` -> ``"sgd-mf"``: the spelling method names are compared in."""
    return name.strip().lower().replace("_", "-")


def _default_cli_name(class_name: str) -> str:
    if class_name.endswith("Imputer"):
        class_name = class_name[: -len("Imputer")]
    return normalise_name(class_name)


def _listing_key(order, name: str) -> tuple:
    # One rule for the discovered classes and the static index alike.
    return (order if isinstance(order, int | float) else math.inf, name)


def all_imputers() -> list[tuple[str, type]]:
    """``(name, class)`` of every imputer exported by ``sklearn_mc``.

    Discovered from ``sklearn_mc.__all__`` (this imports the classes, hence
    torch): every exported :class:`~sklearn_mc._base.BaseMatrixImputer`
    subclass, named by its ``_cli_name`` attribute (or, for a class that has
    none, its class name without ``Imputer``, lower case). Ordered by the
    classes' ``_cli_order``, then any class without one by name.

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
            own = vars(obj)
            name = own.get("_cli_name") or _default_cli_name(obj.__name__)
            found.append((_listing_key(own.get("_cli_order"), name), name, obj))
    return [(name, obj) for _, name, obj in sorted(found, key=lambda f: f[0])]


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


def fast_params(imputer: str | type) -> dict:
    """The settings that make a fit take seconds on a small table.

    Parameters
    ----------
    imputer : str or type
        A ``--method`` name, a class name or an imputer class.

    Returns
    -------
    params : dict
        A copy of the class's ``_fast_params`` (empty without one), to apply
        on top of the defaults.
    """
    cls = get_imputer(imputer) if isinstance(imputer, str) else imputer
    return dict(getattr(cls, "_fast_params", {}))


# --------------------------------------------------- static index from source
@functools.cache
def _parse(module: str) -> tuple[ast.Module, str]:
    """The syntax tree of ``module`` (not executed) and its package."""
    spec = importlib.util.find_spec(module)
    source = spec.loader.get_source(module) if spec and spec.loader else None
    if source is None:
        raise LookupError(f"no source for {module}: cannot index the methods")
    package = module if spec.submodule_search_locations else spec.parent
    return ast.parse(source, filename=spec.origin), package


def _literals(body: list[ast.stmt], names: frozenset, where: str) -> dict:
    """The values of the plain assignments ``NAME = literal`` in ``body``."""
    found = {}
    for stmt in body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in names:
                try:
                    found[target.id] = ast.literal_eval(value)
                except ValueError:
                    raise ValueError(
                        f"{where}.{target.id} must be a literal: the method index "
                        "reads it from the source, without importing"
                    ) from None
    return found


def _find_class(module: str, name: str) -> tuple[str, ast.ClassDef] | None:
    """Where the name ``name`` of ``module`` is defined as a class, if it is.

    Follows ``from ... import`` within the package; a name bound any other
    way (or imported from outside the package) is not found.
    """
    tree, package = _parse(module)
    found = None  # the last binding wins, as when the module runs
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef) and stmt.name == name:
            found = stmt
        elif isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                if (alias.asname or alias.name) == name:
                    origin = "." * stmt.level + (stmt.module or "")
                    found = (importlib.util.resolve_name(origin, package), alias.name)
    if isinstance(found, ast.ClassDef):
        return module, found
    if found is None or found[0].partition(".")[0] != _PACKAGE:
        return None
    return _find_class(*found)


def _is_imputer(module: str, node: ast.ClassDef, seen: frozenset = frozenset()) -> bool:
    """Whether the class derives from ``BaseMatrixImputer`` (by its source)."""
    key = (module, node.name)
    if key == _ROOT:
        return True
    if key in seen:
        return False
    for base in node.bases:
        found = _find_class(module, base.id) if isinstance(base, ast.Name) else None
        if found and _is_imputer(*found, seen | {key}):
            return True
    return False


def _index_from_source() -> tuple[MethodInfo, ...]:
    """:data:`METHODS`, read from the package's source without importing it."""
    tree, _ = _parse(_PACKAGE)
    exports = _literals(tree.body, frozenset({"__all__", "_LAZY_ATTRS"}), _PACKAGE)
    lazy = exports.get("_LAZY_ATTRS", {})
    found = []
    for attr in exports.get("__all__", []):
        module = importlib.util.resolve_name(lazy.get(attr, "."), _PACKAGE)
        hit = _find_class(module, attr)
        if hit is None or not _is_imputer(*hit):
            continue  # not a class (``__version__``) or not an imputer
        module, node = hit
        own = _literals(node.body, _INDEX_ATTRS, f"{module}.{node.name}")
        name = own.get("_cli_name") or _default_cli_name(node.name)
        info = MethodInfo(name, node.name, own.get("_summary", ""))
        found.append((_listing_key(own.get("_cli_order"), name), info))
    return tuple(info for _, info in sorted(found, key=lambda f: f[0]))


def __getattr__(name: str):
    # METHODS is computed on first use: the estimator modules import this one
    # (for ``_iters``) and need not pay for parsing the package.
    if name == "METHODS":
        value = _index_from_source()
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: METHODS: tuple of MethodInfo
#:     The methods, in the order the command line lists them: the names,
#:     classes and summaries of :func:`all_imputers`, read from the source.
METHODS: tuple[MethodInfo, ...]


# ----------------------------------------------------------------- cost model
def _iters(params: dict, default: int = 1) -> int:
    """``params["max_iter"]``, or ``default`` when that is not a positive number.

    For the classes' ``_fit_cost``: the parameters are read before the
    estimator validates them.
    """
    value = params.get("max_iter", default)
    return int(value) if isinstance(value, int | float) and value > 0 else default


def is_iterative(imputer) -> bool:
    """Whether an imputer's fit cost is proportional to its ``max_iter``.

    Parameters
    ----------
    imputer : type or BaseMatrixImputer
        An imputer class or instance (its ``_iterative`` attribute).

    Returns
    -------
    iterative : bool
    """
    return bool(getattr(imputer, "_iterative", False))


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
        The estimate of the class's ``_fit_cost``, counting ``max_iter``
        iterations (early stopping often ends sooner); None for a class
        without a cost model.

    Examples
    --------
    >>> from sklearn_mc import AIRNetImputer
    >>> estimate_fit_seconds(AIRNetImputer(), 600, 10) > 600
    True
    """
    cost = getattr(type(estimator), "_fit_cost", None)
    if cost is None:
        return None
    n_observed = n_rows * n_cols if n_observed is None else n_observed
    seconds = cost(estimator.get_params(), int(n_rows), int(n_cols), int(n_observed))
    return float(seconds) if math.isfinite(seconds) else None
