"""Fuzz suite: random inputs and random parameters for every exported imputer.

Each case draws a shape (1 x 1 up to 40 x 15), a dtype (float32, float64,
int, bool), a magnitude (1e-310 to 1e300, within what the dtype holds), a
missing pattern (random, all-missing rows and columns, a single observed
entry, none, almost all missing), a container (NumPy, pandas, pandas with
nullable dtypes and ``pd.NA``), ``keep_empty_features`` and ``add_indicator``
both ways, and up to three parameters drawn inside the class's
``_parameter_constraints`` (iteration counts capped at 8 and batch sizes
drawn from {32, 10000}, so that fits stay tiny).

The contract checked: the call either raises a clear error (``ValueError`` or
``TypeError`` with a message, raised by sklearn_mc or scikit-learn, never from
inside torch; or the documented ``DivergenceError`` of a diverging fit), or
returns an output that is finite, of the right shape and dtype (float32 for
float32 input, float64 otherwise) and whose observed entries are the input's,
bit for bit.

CI runs the derandomized ``repeatable`` profile (``tests/conftest.py``);
``HYPOTHESIS_PROFILE=explore`` draws fresh cases, and ``FUZZ_EXAMPLES=N``
changes the number of cases per imputer.
"""

from __future__ import annotations

import numbers
import os
import traceback

import numpy as np
import pytest
from conftest import FAST_PARAMS, all_imputer_classes, make_fast
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.utils._param_validation import Interval, StrOptions

from sklearn_mc._optim import DivergenceError

CLASSES = all_imputer_classes()
IDS = [cls.__name__ for cls in CLASSES]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))

#: parameters the fuzzer leaves alone: the shared ones are drawn by the case
#: itself (missing_values, keep_empty_features, add_indicator), the others
#: would only make the run slower or noisier, not test more.
NOT_DRAWN = {
    "missing_values",
    "keep_empty_features",
    "add_indicator",
    "min_value",
    "max_value",
    "device",
    "random_state",
    "verbose",
}
#: iteration counts: drawn in [1, ITER_CAP] so every fit stays tiny.
ITER_PARAMS = {"max_iter", "n_iter_no_change", "anneal_iter"}
ITER_CAP = 8
#: the most every fit may iterate, drawn or not.
FUZZ_FAST = {"max_iter": 10}


def _values_for(name: str, constraint, default):
    """A strategy for one parameter from one of its constraints, or None."""
    if constraint == "boolean":
        return st.booleans()
    if constraint is None:
        return st.none()
    if isinstance(constraint, StrOptions):
        options = sorted(constraint.options - set(constraint.deprecated or ()))
        return st.sampled_from(options) if options else None
    if not isinstance(constraint, Interval):
        return None
    lo, hi = constraint.left, constraint.right
    lo_closed = constraint.closed in ("left", "both")
    hi_closed = constraint.closed in ("right", "both")
    if constraint.type is numbers.Integral:
        first = -2 if lo is None else int(lo) + (0 if lo_closed else 1)
        last = first + 4 if hi is None else int(hi) - (0 if hi_closed else 1)
        if name in ITER_PARAMS:
            last = min(last, first + ITER_CAP - 1)
        if name == "batch_size":
            # a batch of 1 costs one optimiser step per entry: too slow here
            return st.sampled_from([v for v in (32, 10_000) if v >= first])
        return st.integers(first, max(first, min(last, first + 4)))
    # Real intervals: the edges, the inside and a few orders of magnitude.
    candidates = []
    if lo is not None and lo_closed:
        candidates.append(float(lo))
    if hi is not None and hi_closed:
        candidates.append(float(hi))
    if lo is not None and hi is not None:
        candidates += [lo + (hi - lo) * t for t in (1e-3, 0.5, 0.999)]
    else:
        base = 0.0 if lo is None else float(lo)
        candidates += [base + m for m in (1e-8, 1e-3, 0.1, 1.0, 10.0, 1e3)]
    if isinstance(default, numbers.Real) and not isinstance(default, bool):
        candidates.append(float(default))
    return st.sampled_from(sorted(set(candidates)))


def parameter_draws(cls):
    """A strategy for a dict of up to three parameters of ``cls``."""
    defaults = cls().get_params()
    choices = {}
    for name, constraints in cls._parameter_constraints.items():
        if name in NOT_DRAWN or name not in defaults:
            continue
        options = [
            s
            for c in constraints
            if (s := _values_for(name, c, defaults[name])) is not None
        ]
        if options:
            choices[name] = st.one_of(options)
    if not choices:
        return st.just({})
    names = st.lists(st.sampled_from(sorted(choices)), max_size=3, unique=True)
    return names.flatmap(
        lambda chosen: st.fixed_dictionaries({n: choices[n] for n in chosen})
    )


@st.composite
def fuzz_inputs(draw):
    """A matrix with holes, as the user would pass it, and its missing marker."""
    n_rows = draw(st.integers(1, 40))
    n_cols = draw(st.integers(1, 15))
    kind = draw(st.sampled_from(["float64", "float32", "int", "bool"]))
    pattern = draw(
        st.sampled_from(["random", "rows", "cols", "single", "none", "sparse"])
    )
    container = draw(st.sampled_from(["numpy", "pandas", "nullable"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.RandomState(seed)
    rank = min(n_rows, n_cols, 3)
    values = rng.randn(n_rows, rank) @ rng.randn(rank, n_cols)
    values += rng.randn(n_cols)
    if draw(st.booleans()):
        values[:, rng.randint(n_cols)] = 1.5  # a constant column

    missing = np.zeros((n_rows, n_cols), dtype=bool)
    if pattern == "random":
        missing = rng.rand(n_rows, n_cols) < draw(st.sampled_from([0.1, 0.3, 0.6]))
    elif pattern == "rows":
        missing = rng.rand(n_rows, n_cols) < 0.2
        missing[rng.rand(n_rows) < 0.3] = True
    elif pattern == "cols":
        missing = rng.rand(n_rows, n_cols) < 0.2
        missing[:, rng.rand(n_cols) < 0.3] = True
    elif pattern == "single":
        missing[:] = True
        missing[rng.randint(n_rows), rng.randint(n_cols)] = False
    elif pattern == "sparse":
        missing = rng.rand(n_rows, n_cols) < 0.95

    if kind in ("float64", "float32"):
        if kind == "float32":  # what float32 holds
            exponents = [-30, -13, 0, 0, 0, 13, 30]
        else:
            exponents = [-310, -200, -100, -13, 0, 0, 0, 13, 100, 150, 300]
        exponent = draw(st.sampled_from(exponents))
        X = (values * 10.0**exponent).astype(kind)
        X[missing] = np.nan
        marker = np.nan
    elif kind == "int":
        X = np.abs(np.round(values * 3)).astype(np.int64)
        X[missing] = -1
        marker = -1
    else:  # bool: False marks the missing entries
        X = np.ones((n_rows, n_cols), dtype=bool)
        X[missing] = False
        X[~missing] = rng.rand(int((~missing).sum())) < 0.8
        X[missing] = False
        missing = ~X  # every False is missing under missing_values=0
        marker = 0

    observed = ~missing
    if container == "numpy":
        return X, marker, observed
    import pandas as pd

    columns = [f"c{j}" for j in range(n_cols)]
    df = pd.DataFrame(X, columns=columns)
    if container == "nullable" and kind != "bool":
        nullable = {"float64": "Float64", "float32": "Float32", "int": "Int64"}[kind]
        if kind == "int":
            df = df.mask(df == -1).astype(nullable)  # pd.NA at the holes
        else:
            df = df.astype(nullable)  # NaN becomes pd.NA
        marker = draw(st.sampled_from([np.nan, pd.NA]))
    return df, marker, observed


def _raised_by_torch(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and f"{os.sep}torch{os.sep}" in frames[-1].filename


def _check_output(out, X_in, observed, est, n_rows, keep_empty, float32):
    assert isinstance(out, np.ndarray)
    assert out.dtype == (np.float32 if float32 else np.float64)
    assert np.isfinite(out).all()
    valid = est._valid_mask
    n_out = valid.size if keep_empty else int(valid.sum())
    n_ind = 0 if est.indicator_ is None else est.indicator_.features_.size
    assert out.shape == (n_rows, n_out + n_ind)
    assert out.shape[1] == len(est.get_feature_names_out())
    columns = np.arange(valid.size) if keep_empty else np.flatnonzero(valid)
    inp = np.asarray(X_in, dtype=object if X_in.dtype == object else None)
    for k, j in enumerate(columns):
        rows = observed[:n_rows, j]
        expected = inp[:n_rows][rows, j].astype(out.dtype)
        np.testing.assert_array_equal(out[rows, k], expected)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fuzz_clear_error_or_valid_output(cls, data):
    X, marker, observed = data.draw(fuzz_inputs(), label="X")
    params = data.draw(parameter_draws(cls), label="params")
    keep_empty = data.draw(st.booleans(), label="keep_empty_features")
    add_indicator = data.draw(st.booleans(), label="add_indicator")
    fast = {**FAST_PARAMS.get(cls.__name__, {}), **FUZZ_FAST}
    est = make_fast(
        cls,
        **{k: v for k, v in fast.items() if k not in params},
        **params,
        missing_values=marker,
        keep_empty_features=keep_empty,
        add_indicator=add_indicator,
    )
    float32 = _input_dtype(X) == np.float32
    inp = _as_array(X)
    try:
        out = est.fit_transform(X)
    except (ValueError, TypeError) as exc:
        assert str(exc), f"{type(exc).__name__} without a message"
        assert not _raised_by_torch(exc), f"torch error leaked: {exc!r}"
        return
    except DivergenceError as exc:
        assert "diverged" in str(exc)
        return
    _check_output(out, inp, observed, est, inp.shape[0], keep_empty, float32)
    head = min(3, inp.shape[0])
    part = X.iloc[:head] if hasattr(X, "iloc") else X[:head]
    out = est.transform(part)
    _check_output(out, inp, observed, est, head, keep_empty, float32)


def _as_array(X) -> np.ndarray:
    if hasattr(X, "to_numpy"):
        return X.astype(object).to_numpy()
    return X


def _input_dtype(X):
    if hasattr(X, "dtypes"):
        kinds = {str(d) for d in X.dtypes}
        return np.float32 if kinds == {"float32"} else np.float64
    return X.dtype
