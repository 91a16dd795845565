"""``sklearn-mc impute``: which columns are imputed and how the cells are written
(integers, clipping, float format), warnings (D14, id-like columns, slow fits)
and ``--report``."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from cli_helpers import FAST, assert_completed, one_error_line, run_cli, write_table

from sklearn_mc import AIRNetImputer, KNNImputer, SVDImputer, _registry
from sklearn_mc.cli import _impute


@pytest.fixture
def people(tmp_path):
    """A table with an id, an integer and a float column with holes, and text."""
    rng = np.random.default_rng(0)
    n = 24
    age = rng.integers(18, 80, n).astype(float)
    income = np.round(rng.normal(50_000, 15_000, n), 2)
    visits = rng.integers(0, 9, n).astype(float)
    age[[2, 5, 9]] = np.nan
    income[[1, 7]] = np.nan
    visits[[3, 4]] = np.nan
    df = pd.DataFrame(
        {
            "id": np.arange(101, 101 + n),
            "age": pd.array(age, dtype="Float64").astype("Int64"),
            "income": income,
            "visits": pd.array(visits, dtype="Float64").astype("Int64"),
            "name": [f"p{i}" for i in range(n)],
        }
    )
    path = tmp_path / "people.csv"
    df.to_csv(path, index=False)
    return path, pd.read_csv(path)


def _impute_people(capsys, people, tmp_path, *extra):
    path, _ = people
    dst = tmp_path / "out.csv"
    code, out, err = run_cli(
        capsys, "impute", str(path), "-o", str(dst), "--index-col", "id",
        "--passthrough-non-numeric", *FAST, *extra,
    )  # fmt: skip
    assert code == 0, err
    return dst, err


def test_integer_columns_stay_integer(capsys, people, tmp_path):
    dst, _ = _impute_people(capsys, people, tmp_path)
    lines = dst.read_text().splitlines()
    header = lines[0].split(",")
    for line in lines[1:]:
        cells = dict(zip(header, line.split(","), strict=True))
        assert cells["age"].isdigit() and cells["visits"].isdigit(), line
    out = pd.read_csv(dst)
    assert out["age"].dtype.kind == "i" and out["visits"].dtype.kind == "i"
    _, original = people
    known = original["age"].notna()
    assert (out["age"][known] == original["age"][known]).all()
    assert out["name"].equals(original["name"])


def test_float_format_applies_to_imputed_cells_only(capsys, people, tmp_path):
    dst, _ = _impute_people(capsys, people, tmp_path, "--float-format", "%.1f")
    _, original = people
    text = pd.read_csv(dst, dtype=str)
    raw = pd.read_csv(people[0], dtype=str)
    imputed = original["income"].isna()
    # Observed cells: the text as read (2 decimals); imputed cells: 1 decimal.
    assert (text["income"][~imputed] == raw["income"][~imputed]).all()
    for cell in text["income"][imputed]:
        assert len(cell.split(".")[1]) == 1, cell


def test_clip_to_the_observed_range(tmp_path, capsys):
    # An SVD of rank 1 extrapolates: the imputed cell of column b falls far
    # outside [0, 1] unless it is clipped.
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,0\n2,0.5\n3,1\n100,\n")
    args = ["impute", str(src), "-o", "-", "-q", "--method", "svd"]
    params = ["--param", "rank=1", "--param", "scaling='none'", "--seed", "0"]
    code, out, err = run_cli(capsys, *args, *params)
    assert code == 0, err
    free = float(out.splitlines()[-1].split(",")[1])
    code, out, err = run_cli(capsys, *args, *params, "--clip")
    assert code == 0, err
    clipped = float(out.splitlines()[-1].split(",")[1])
    assert not 0.0 <= free <= 1.0
    assert clipped == 1.0


def test_postprocess_rounds_and_clips_imputed_only():
    X = np.array([[1.0, 0.25], [3.0, np.nan], [np.nan, 0.75]])
    completed = np.array([[1.0, 0.25], [3.0, 9.0], [2.6, 0.75]])
    values, n_clipped = _impute.postprocess(completed, X, [True, False], clip=True)
    np.testing.assert_array_equal(values, [[1.0, 0.25], [3.0, 0.75], [3.0, 0.75]])
    assert n_clipped.tolist() == [0, 1]


def test_columns_and_exclude(tmp_path, capsys):
    src = tmp_path / "in.csv"
    original = write_table(src, n_rows=12, n_cols=4)
    for option, value, imputed in [
        ("--columns", "gene 1,gene 2", ["gene 1", "gene 2"]),
        ("--exclude", "gene 3", ["gene 0", "gene 1", "gene 2"]),
    ]:
        dst = tmp_path / "out.csv"
        code, _, err = run_cli(
            capsys, "impute", str(src), "-o", str(dst), "--index-col", "0",
            option, value, *FAST,
        )  # fmt: skip
        assert code == 0, err
        out = pd.read_csv(dst, index_col=0)
        assert_completed(original[imputed], out[imputed])
        untouched = [c for c in original.columns if c not in imputed]
        pd.testing.assert_frame_equal(out[untouched], original[untouched])


def test_columns_errors(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("a,b,city\n1,,Paris\n2,3,Rome\n4,5,Oslo\n")
    code, _, err = run_cli(capsys, "impute", str(src), "-o", "-", "--columns", "zz")
    assert code == 1 and "--columns: no column 'zz'" in one_error_line(err)
    code, _, err = run_cli(capsys, "impute", str(src), "-o", "-", "--columns", "a,city")
    assert code == 1 and "column 'city' is not numeric" in one_error_line(err)
    # Text columns outside --columns are copied untouched.
    code, out, err = run_cli(
        capsys, "impute", str(src), "-o", "-", "-q", "--columns", "a,b", *FAST
    )
    assert code == 0, err
    assert out.splitlines()[1].endswith(",Paris")


def test_id_like_column_warns(capsys, people, tmp_path):
    path, _ = people
    code, _, err = run_cli(
        capsys, "impute", str(path), "-o", str(tmp_path / "o.csv"),
        "--exclude", "name", *FAST,
    )  # fmt: skip
    assert code == 0, err
    assert "warning: column 'id' looks like a row id" in err
    _, err = _impute_people(capsys, people, tmp_path)  # --index-col id
    assert "looks like a row id" not in err


def test_quiet_silences_library_warnings_and_warnings_are_one_line(tmp_path, capsys):
    # D14: `-q` printed a library UserWarning, on two lines (source line too).
    src = tmp_path / "in.csv"
    write_table(src, n_rows=6, n_cols=4, missing_rate=0.4)
    args = ["impute", str(src), "-o", str(tmp_path / "o.csv"), "--index-col", "0"]
    svd = ["--method", "svd", "--param", "rank=4", "--seed", "0"]
    code, _, err = run_cli(capsys, *args, *svd)
    assert code == 0, err
    lines = [line for line in err.splitlines() if "degrees of freedom" in line]
    assert len(lines) == 1 and lines[0].startswith("sklearn-mc: warning: ")
    assert "sys.exit" not in err and "warnings.warn" not in err
    code, _, err = run_cli(capsys, *args, *svd, "-q")
    assert code == 0 and err == ""


def test_warning_filters_are_restored_after_main(tmp_path, capsys):
    src = tmp_path / "in.csv"
    write_table(src, n_rows=6)
    before = warnings.showwarning, list(warnings.filters)
    args = ["impute", str(src), "-o", "-", "-q", "--index-col", "0", *FAST]
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    assert (warnings.showwarning, list(warnings.filters)) == before


def test_slow_fit_is_announced_before_it_starts(tmp_path, capsys, monkeypatch):
    # The cost model says AIR-Net on 600 rows takes many minutes (a user
    # waited 17 minutes without a word); KNN on the same table does not.
    with pytest.warns(UserWarning, match=r"may take up to about \d+(\.\d)? min"):
        _impute.warn_if_slow(AIRNetImputer(), 600, 10, 4800)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _impute.warn_if_slow(KNNImputer(), 600, 10, 4800) < 60
    fast_air = AIRNetImputer(max_iter=50)
    assert _registry.estimate_fit_seconds(fast_air, 600, 10) < 60
    # In the command, the warning comes before "fitting".
    monkeypatch.setattr(_impute, "SLOW_FIT_SECONDS", 0.0)
    src = tmp_path / "in.csv"
    write_table(src, n_rows=6)
    args = ["impute", str(src), "-o", "-", "--index-col", "0", *FAST]
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    assert err.index("may take up to") < err.index("fitting")


def test_report_text_and_json(tmp_path, capsys, people):
    path, original = people
    report = tmp_path / "report.json"
    _, err = _impute_people(capsys, people, tmp_path, "--report", str(report), "--clip")
    data = json.loads(report.read_text())
    assert data["method"] == "knn" and data["estimator"] == "KNNImputer"
    assert data["columns"]["age"] == {
        "kind": "integer", "missing": 3, "filled": 3, "clipped": 0
    }  # fmt: skip
    assert data["columns"]["income"]["missing"] == 2
    assert data["copied_columns"] == ["name"]
    assert data["fitted"]["n_iter_"] == 1
    assert data["fit_seconds"] >= 0 and data["clip"] is True
    # Text report on stderr; SVD's chosen settings and stop reason appear.
    code, _, err = run_cli(
        capsys, "impute", str(path), "-o", str(tmp_path / "o.csv"), "-q",
        "--index-col", "id", "--exclude", "name", "--method", "svd",
        "--param", "rank=2", "--seed", "0", "--report",
    )  # fmt: skip
    assert code == 0, err
    assert "sklearn-mc impute report" in err
    assert "rank_=2" in err and "n_iter_=" in err
    assert re.search(r"income +float +2 +2 +0", err)


@pytest.mark.filterwarnings("ignore:rank=1 has")
def test_every_fitted_attribute_in_the_report_is_plain(tmp_path):
    X = np.array([[1.0, 2.0], [np.nan, 4.0], [5.0, 6.0], [7.0, np.nan]])
    est = SVDImputer(rank=1, random_state=0).fit(X)
    summary = _impute._fitted_summary(est)
    assert summary["rank_"] == 1
    json.dumps(_impute._jsonable(summary))


def test_all_missing_column_left_empty_and_reported(tmp_path, capsys):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    original = write_table(src, n_rows=10, n_cols=3)
    original["empty"] = np.nan
    original.to_csv(src)
    code, _, err = run_cli(
        capsys, "impute", str(src), "-o", str(dst), "--index-col", "0", *FAST
    )
    assert code == 0, err
    assert "no observed value left empty: 'empty'" in err
    out = pd.read_csv(dst, index_col=0)
    assert out["empty"].isna().all()
    assert_completed(original.drop(columns="empty"), out.drop(columns="empty"))


def test_seed_makes_output_reproducible(tmp_path, capsys):
    src = tmp_path / "in.csv"
    write_table(src, n_rows=20, n_cols=4)
    args = ["impute", str(src), "-o", "-", "-q", "--index-col", "0", "--seed", "3"]
    svd = ["--method", "svd", "--param", "rank=2"]
    outputs = [run_cli(capsys, *args, *svd)[1] for _ in range(2)]
    assert outputs[0] == outputs[1] != ""
