"""Helpers shared by the ``tests/test_cli_*.py`` files (not a test module)."""

from __future__ import annotations

import ast
import io
import subprocess
import sys

import numpy as np
import pandas as pd

from sklearn_mc import cli

#: the method the command-line tests use: no training loop, fast on any table.
FAST = ["--method", "knn"]


def run_cli(capsys, *args: str, stdin: bytes | None = None, monkeypatch=None):
    """``cli.main(args)`` in-process: ``(exit code, stdout, stderr)``."""
    if stdin is not None:
        wrapper = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
        monkeypatch.setattr(sys, "stdin", wrapper)
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_fresh(code: str, heavy: tuple[str, ...]) -> tuple[str, list[str]]:
    """Run ``code`` in a fresh interpreter: its stdout, and which of the
    ``heavy`` modules it imported."""
    probe = (
        f"\nimport sys\nprint('HEAVY', [m for m in {heavy!r} if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code + probe],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out, _, last = result.stdout.rstrip("\n").rpartition("\n")
    assert last.startswith("HEAVY "), result.stdout
    return out, ast.literal_eval(last[len("HEAVY ") :])


def one_error_line(stderr: str) -> str:
    """The single ``sklearn-mc: error:`` line of a failed run."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    errors = [line for line in lines if line.startswith("sklearn-mc: error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def write_table(path, n_rows=30, n_cols=4, missing_rate=0.2, seed=0):
    """A CSV with a string index column, a header and NaNs; returns the frame."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, 2)) @ rng.standard_normal((2, n_cols))
    X = np.round(X, 3) + 10.0
    X[rng.random(X.shape) < missing_rate] = np.nan
    X[:, 0][np.isnan(X[:, 0])] = 1.5  # one fully observed column
    df = pd.DataFrame(
        X,
        index=pd.Index([f"row{i}" for i in range(n_rows)], name="sample"),
        columns=[f"gene {j}" for j in range(n_cols)],
    )
    df.to_csv(path)
    return df


def assert_completed(original: pd.DataFrame, result: pd.DataFrame) -> None:
    """Same labels, finite values, observed cells exactly as in ``original``."""
    assert list(result.columns) == list(original.columns)
    assert result.index.name == original.index.name
    assert list(result.index) == list(original.index)
    values = result.to_numpy(dtype=float)
    assert np.isfinite(values).all()
    observed = ~np.isnan(original.to_numpy(dtype=float))
    np.testing.assert_array_equal(
        values[observed], original.to_numpy(dtype=float)[observed]
    )
