"""Offline intersphinx inventories for scikit-learn, NumPy, SciPy, pandas and torch.

The documentation links to these projects' reference pages, but the machines
that build it (CI included) may have no internet access, and ``sphinx -W``
turns a failed inventory download into a failed build. So the inventories
(``objects.inv``) are written here, at build time, from the *installed*
packages: each public name is mapped to the page its project's documentation
gives it, following the URL pattern of that project's ``stable`` docs. Only
names that exist in the installed package are listed, so a reference to a
name that does not exist stays plain text instead of becoming a dead link.

``intersphinx_mapping`` in ``conf.py`` points at the files written by
:func:`write_inventories`; nothing is downloaded.
"""

from __future__ import annotations

import importlib
import inspect
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

Entry = tuple[str, str, str]  # (name, "py:role", uri relative to the docs' root)

BASES = {
    "sklearn": "https://scikit-learn.org/stable/",
    "numpy": "https://numpy.org/doc/stable/",
    "scipy": "https://docs.scipy.org/doc/scipy/",
    "pandas": "https://pandas.pydata.org/docs/",
    "torch": "https://docs.pytorch.org/docs/stable/",
}


def _import(name: str):
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - an optional package or a broken submodule
        return None


def _public_methods(cls: type) -> Iterator[str]:
    for attr, value in vars(cls).items():
        if not attr.startswith("_") and callable(value):
            yield attr
    for base in cls.__mro__[1:]:
        if base.__module__.startswith(cls.__module__.split(".")[0]):
            for attr, value in vars(base).items():
                if not attr.startswith("_") and callable(value):
                    yield attr


def _role(obj) -> str | None:
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if callable(obj):
        return "function"
    return None


def sklearn_entries() -> Iterator[Entry]:
    """Every name in the ``__all__`` of scikit-learn's public modules.

    Pages: ``api/sklearn.<module>.html`` for a module (scikit-learn >= 1.6),
    ``modules/generated/<full name>.html`` for a class or function, its
    methods as anchors on the class page.
    """
    sklearn = _import("sklearn")
    if sklearn is None:
        return
    for flag in ("enable_iterative_imputer", "enable_halving_search_cv"):
        _import(f"sklearn.experimental.{flag}")  # their classes are documented too
    yield "sklearn", "py:module", "api/index.html"
    for sub in sklearn.__all__:
        full = f"sklearn.{sub}"
        mod = _import(full)
        if mod is None or not inspect.ismodule(mod):
            obj = getattr(sklearn, sub, None)
            role = _role(obj)
            if role:
                yield full, f"py:{role}", f"modules/generated/{full}.html#{full}"
            continue
        yield full, "py:module", f"api/{full}.html#module-{full}"
        for name in getattr(mod, "__all__", []):
            try:
                obj = getattr(mod, name, None)
            except ImportError:  # experimental: needs an explicit enable_* import
                continue
            role = _role(obj)
            if role is None:
                continue
            qual = f"{full}.{name}"
            page = f"modules/generated/{qual}.html"
            yield qual, f"py:{role}", f"{page}#{qual}"
            if role == "class":
                for meth in sorted(set(_public_methods(obj))):
                    yield f"{qual}.{meth}", "py:method", f"{page}#{qual}.{meth}"


# NumPy, SciPy, pandas and torch document far more than is worth mapping;
# these are the names this documentation and its gallery use, plus the
# common ones a reader follows from them.
_NUMPY_FUNCTIONS = """
abs absolute all allclose any arange argmax argmin argsort array asarray
broadcast_to clip concatenate cumsum diag dot empty empty_like fill_diagonal
full full_like hstack isfinite isnan ix_ linspace log log1p logical_and
logical_not logical_or max maximum mean median min minimum nan_to_num
nanmax nanmean nanmedian nanmin nanstd nanvar ones ones_like percentile
quantile ravel repeat reshape round sqrt square stack std sum take tile
unique vstack where zeros zeros_like
""".split()


def numpy_entries() -> Iterator[Entry]:
    np = _import("numpy")
    if np is None:
        return
    yield "numpy", "py:module", "reference/index.html#module-numpy"
    for name in _NUMPY_FUNCTIONS:
        if hasattr(np, name):
            yield (
                f"numpy.{name}",
                "py:function",
                f"reference/generated/numpy.{name}.html",
            )
    yield "numpy.ndarray", "py:class", "reference/generated/numpy.ndarray.html"
    for name in ("float32", "float64", "int64", "bool_"):
        yield f"numpy.{name}", "py:class", f"reference/arrays.scalars.html#numpy.{name}"
    yield "numpy.nan", "py:data", "reference/constants.html#numpy.nan"
    yield "numpy.ma", "py:module", "reference/maskedarray.html"
    yield (
        "numpy.ma.masked_array",
        "py:class",
        "reference/generated/numpy.ma.masked_array.html",
    )
    rnd = "reference/random/"
    yield "numpy.random", "py:module", f"{rnd}index.html#module-numpy.random"
    yield (
        "numpy.random.Generator",
        "py:class",
        f"{rnd}generator.html#numpy.random.Generator",
    )
    yield (
        "numpy.random.default_rng",
        "py:function",
        f"{rnd}generator.html#numpy.random.default_rng",
    )
    yield (
        "numpy.random.RandomState",
        "py:class",
        f"{rnd}legacy.html#numpy.random.RandomState",
    )


def scipy_entries() -> Iterator[Entry]:
    sparse = _import("scipy.sparse")
    if sparse is None:
        return
    yield "scipy.sparse", "py:module", "reference/sparse.html#module-scipy.sparse"
    for name in sparse.__all__:
        obj = getattr(sparse, name, None)
        role = _role(obj)
        if role in ("class", "function"):
            qual = f"scipy.sparse.{name}"
            yield qual, f"py:{role}", f"reference/generated/{qual}.html#{qual}"


def pandas_entries() -> Iterator[Entry]:
    pd = _import("pandas")
    if pd is None:
        return
    yield "pandas", "py:module", "reference/index.html#module-pandas"
    api = "reference/api/"
    for name in ("DataFrame", "Series", "Index", "Timestamp", "Categorical"):
        yield f"pandas.{name}", "py:class", f"{api}pandas.{name}.html"
    for name in ("DataFrame", "Series"):
        cls = getattr(pd, name)
        for meth in ("select_dtypes", "to_numpy", "astype", "isna", "fillna", "copy"):
            if hasattr(cls, meth):
                qual = f"pandas.{name}.{meth}"
                yield qual, "py:method", f"{api}{qual}.html"
    for name in ("read_csv", "read_parquet", "to_datetime", "isna"):
        if hasattr(pd, name):
            yield f"pandas.{name}", "py:function", f"{api}pandas.{name}.html"
    yield "pandas.NA", "py:data", "user_guide/missing_data.html"


_TORCH_FUNCTIONS = """
manual_seed set_num_threads get_num_threads from_numpy tensor as_tensor
svd_lowrank no_grad compile
""".split()


def torch_entries() -> Iterator[Entry]:
    torch = _import("torch")
    if torch is None:
        return
    yield "torch", "py:module", "torch.html#module-torch"
    yield "torch.Tensor", "py:class", "tensors.html#torch.Tensor"
    yield "torch.device", "py:class", "tensor_attributes.html#torch.device"
    yield "torch.dtype", "py:class", "tensor_attributes.html#torch.dtype"
    yield "torch.Generator", "py:class", "generated/torch.Generator.html"
    for name in _TORCH_FUNCTIONS:
        if hasattr(torch, name):
            yield f"torch.{name}", "py:function", f"generated/torch.{name}.html"
    yield "torch.linalg", "py:module", "linalg.html#module-torch.linalg"
    for name in ("solve", "cholesky", "svd", "qr", "lstsq", "eigh", "norm"):
        if hasattr(torch.linalg, name):
            yield (
                f"torch.linalg.{name}",
                "py:function",
                f"generated/torch.linalg.{name}.html",
            )
    yield (
        "torch.cuda.is_available",
        "py:function",
        "generated/torch.cuda.is_available.html",
    )
    yield "torch.nn", "py:module", "nn.html#module-torch.nn"
    nn = torch.nn
    for name in getattr(nn.modules, "__all__", []):
        if inspect.isclass(getattr(nn, name, None)):
            yield f"torch.nn.{name}", "py:class", f"generated/torch.nn.{name}.html"
    yield "torch.optim", "py:module", "optim.html#module-torch.optim"
    for name in ("Adam", "AdamW", "SGD", "LBFGS", "RMSprop"):
        if hasattr(torch.optim, name):
            yield (
                f"torch.optim.{name}",
                "py:class",
                f"generated/torch.optim.{name}.html",
            )


PROJECTS = {
    "sklearn": ("scikit-learn", sklearn_entries),
    "numpy": ("NumPy", numpy_entries),
    "scipy": ("SciPy", scipy_entries),
    "pandas": ("pandas", pandas_entries),
    "torch": ("PyTorch", torch_entries),
}


def _version(package: str) -> str:
    mod = _import(package)
    return str(getattr(mod, "__version__", "")) if mod is not None else ""


def inventory_bytes(project: str, version: str, entries: Iterable[Entry]) -> bytes:
    """An ``objects.inv`` (Sphinx inventory version 2) holding ``entries``."""
    seen: set[tuple[str, str]] = set()
    lines = []
    for name, role, uri in entries:
        if (name, role) in seen:
            continue
        seen.add((name, role))
        lines.append(f"{name} {role} 1 {uri} -\n")
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    return header.encode() + zlib.compress("".join(lines).encode())


def write_inventories(folder: Path) -> dict[str, tuple[str, str]]:
    """Write one inventory per installed project; the ``intersphinx_mapping``."""
    folder.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for key, (project, entries) in PROJECTS.items():
        if _import(key) is None:
            continue
        data = inventory_bytes(project, _version(key), entries())
        path = folder / f"{key}.inv"
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        mapping[key] = (BASES[key], str(path))
    return mapping
