"""``sklearn-mc evaluate``: hide observed cells of the user's table, rank methods."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from cli_helpers import one_error_line, run_cli, write_table

from sklearn_mc.cli import _evaluate


def test_hide_cells_keeps_one_observed_cell_per_column():
    rng = np.random.default_rng(0)
    observed = rng.random((20, 5)) < 0.5
    observed[:, 4] = False
    observed[3, 4] = True  # a column with a single observed cell
    hidden = _evaluate.hide_cells(observed, 0.3, rng)
    assert not (hidden & ~observed).any()
    assert ((observed & ~hidden).sum(axis=0)[:4] >= 1).all()
    assert not hidden[:, 4].any()
    assert hidden.sum() == round(0.3 * observed.sum())


def test_evaluate_ranks_methods_on_hidden_cells(tmp_path, capsys):
    src = tmp_path / "in.csv"
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2)) @ rng.standard_normal((2, 6)) + 10.0
    X[rng.random(X.shape) < 0.1] = np.nan
    pd.DataFrame(X, columns=list("abcdef")).to_csv(src, index=False)
    code, out, err = run_cli(
        capsys, "evaluate", str(src), "--methods", "knn,svd",
        "--fast", "--json", "-q", "--param", "rank=2",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    ranking = data["ranking"]
    assert [r["method"] for r in ranking] != []
    assert {r["method"] for r in ranking} == {"knn", "svd", "column mean"}
    errors = [r["error"] for r in ranking]
    assert errors == sorted(errors)
    by_name = {r["method"]: r["error"] for r in ranking}
    # The table is exactly rank 2: a rank-2 SVD recovers it, the mean cannot.
    assert by_name["svd"] < 0.1 * by_name["column mean"]
    assert data["hidden_cells"] > 0


def test_evaluate_table_output_and_errors(tmp_path, capsys):
    src = tmp_path / "in.csv"
    write_table(src, n_rows=15, n_cols=3)
    code, out, err = run_cli(
        capsys, "evaluate", str(src), "--index-col", "0", "--methods", "knn", "-q"
    )
    assert code == 0, err
    assert out.splitlines()[0].startswith("| rank | method")
    assert "column mean" in out
    for extra, expected in [
        (["--fraction", "1.5"], "--fraction must be in (0, 1)"),
        (["--methods", "nope"], "unknown method 'nope'"),
        (["--param", "zzz=1"], "no method compared has the parameter 'zzz'"),
    ]:
        code, _, err = run_cli(
            capsys, "evaluate", str(src), "--index-col", "0", "--methods", "knn",
            *extra,
        )  # fmt: skip
        assert code == 1
        assert expected in one_error_line(err)


@pytest.mark.parametrize("fraction", [0.05, 0.5])
def test_evaluate_is_reproducible(tmp_path, capsys, fraction):
    src = tmp_path / "in.csv"
    write_table(src, n_rows=20, n_cols=4)
    args = ["evaluate", str(src), "--index-col", "0", "--methods", "knn", "--json"]
    args += ["--fraction", str(fraction), "-q"]
    outs = [json.loads(run_cli(capsys, *args)[1])["ranking"] for _ in range(2)]
    assert [r["error"] for r in outs[0]] == [r["error"] for r in outs[1]]
