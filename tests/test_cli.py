"""The ``sklearn-mc`` command, end to end.

The console-script tests run the installed ``sklearn-mc`` executable in a
subprocess (each start imports torch, so there are few of them); the other
tests call :func:`sklearn_mc.cli.main` in-process.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

import sklearn_mc
from sklearn_mc import cli

#: fast methods first; the tests use the first one this installation exports.
_PREFERRED = ["knn", "svd", "sgd-mf", "mlp", "dmf", "deep-mf", "air-net"]
FAST_METHOD = next((m for m in _PREFERRED if hasattr(sklearn_mc, cli.METHODS[m])), None)
#: keeps the slower fallbacks quick while knn/svd are not exported yet.
FAST_PARAMS = {"sgd-mf": ["max_iter=20"], "mlp": ["max_iter=5"], "dmf": ["max_iter=5"]}

needs_method = pytest.mark.skipif(
    FAST_METHOD is None, reason="no imputer exported by sklearn_mc yet"
)


def _method_args() -> list[str]:
    args = ["--method", FAST_METHOD]
    for p in FAST_PARAMS.get(FAST_METHOD, []):
        args += ["--param", p]
    return args


def _console_script() -> str:
    exe = shutil.which("sklearn-mc")
    if exe is None:
        pytest.skip("the sklearn-mc console script is not installed (pip install -e .)")
    return exe


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run(
        [_console_script(), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _write_table(path, n_rows=30, n_cols=5, missing_rate=0.2, seed=0):
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


def _assert_completed(original: pd.DataFrame, result: pd.DataFrame) -> None:
    assert list(result.columns) == list(original.columns)
    assert result.index.name == original.index.name
    assert list(result.index) == list(original.index)
    values = result.to_numpy(dtype=float)
    assert np.isfinite(values).all()
    observed = ~np.isnan(original.to_numpy(dtype=float))
    np.testing.assert_array_equal(values[observed], original.to_numpy()[observed])


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("sklearn-mc: error: ")
    return lines[0]


# ----------------------------------------------------- installed console script
def test_console_help():
    result = _run("--help")
    assert result.returncode == 0, result.stderr
    for word in ("impute", "demo", "methods", "examples:"):
        assert word in result.stdout
    assert result.stderr == ""


@needs_method
def test_console_roundtrip_csv(tmp_path):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    original = _write_table(src)
    assert original.isna().to_numpy().any()
    result = _run(
        "impute",
        str(src),
        "-o",
        str(dst),
        "--index-col",
        "0",
        "--seed",
        "0",
        *_method_args(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # progress goes to stderr
    assert f"wrote {dst}" in result.stderr
    out = pd.read_csv(dst, index_col=0)
    _assert_completed(original, out)
    # The header line is written back as it was read.
    assert dst.read_text().splitlines()[0] == src.read_text().splitlines()[0]


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("missing.csv", None, "no such file"),
        ("ragged.csv", "a,b,c\n1,2,3\n4,5\n7,8,9\n", "ragged rows: line 3"),
        ("text.csv", "a,b,city\n1,,Paris\n2,3,Rome\n", "column 'city'"),
    ],
)
def test_console_bad_files(tmp_path, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    result = _run("impute", str(path), "-o", str(tmp_path / "out.csv"))
    assert result.returncode != 0
    assert expected in _one_error_line(result.stderr)
    assert not (tmp_path / "out.csv").exists()


# ------------------------------------------------------------------ in-process
def _main(capsys, *args: str):
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_no_command_prints_help(capsys):
    code, out, _ = _main(capsys)
    assert code == 0
    assert "usage: sklearn-mc" in out


def test_impute_help_lists_methods(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["impute", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in cli.METHODS:
        assert name in out
    assert "--passthrough-non-numeric" in out


@pytest.mark.parametrize(
    "content, expected",
    [
        ("a,b\n1,2\n3,4,5\n", "ragged rows: line 3 has 3 fields"),
        ("", "empty file"),
        ("a,b,c\n1,x,3\n4,5,6\n", "column 'b' is not numeric (e.g. 'x')"),
        ("a,b\n,\n,\n", "no observed value"),
    ],
)
@needs_method
def test_bad_content(tmp_path, capsys, content, expected):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    out_path = str(tmp_path / "o.csv")
    code, _, err = _main(capsys, "impute", str(path), "-o", out_path, *_method_args())
    assert code == 1
    assert expected in _one_error_line(err)


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--method", "nope"], "unknown method 'nope'"),
        (["--param", "no_such_param=1"], "has no parameter 'no_such_param'"),
        (["--param", "=1"], "--param expects KEY=VALUE"),
        (["-o", "out.xyz"], "cannot tell the format of 'out.xyz'"),
    ],
)
@needs_method
def test_bad_arguments(tmp_path, capsys, extra, expected):
    src = tmp_path / "in.csv"
    _write_table(src, n_rows=8, n_cols=3)
    args = ["impute", str(src), "-o", str(tmp_path / "out.csv"), *_method_args()]
    code, _, err = _main(capsys, *args, *extra)
    assert code == 1
    assert expected in _one_error_line(err)


@needs_method
def test_bad_parameter_value_is_one_line(tmp_path, capsys):
    src = tmp_path / "in.csv"
    _write_table(src, n_rows=8, n_cols=3)
    code, _, err = _main(
        capsys,
        "impute",
        str(src),
        "-o",
        str(tmp_path / "o.csv"),
        *_method_args(),
        "--param",
        "missing_values='zero'",
    )
    assert code == 1
    assert "missing_values" in _one_error_line(err)


def test_method_not_installed(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(cli.METHODS, "future", "FutureImputer")
    src = tmp_path / "in.csv"
    _write_table(src, n_rows=8, n_cols=3)
    code, _, err = _main(capsys, "impute", str(src), "-o", "x.csv", "-m", "future")
    assert code == 1
    assert "'future' (FutureImputer) is not available" in _one_error_line(err)


def test_missing_file_checked_before_method(tmp_path, capsys):
    code, _, err = _main(
        capsys, "impute", str(tmp_path / "no.csv"), "-o", "x.csv", "-m", "nope"
    )
    assert code == 1
    assert "no such file" in _one_error_line(err)


@needs_method
def test_passthrough_non_numeric(tmp_path, capsys):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    df = _write_table(src, n_rows=12, n_cols=3).reset_index()
    df.insert(2, "label", ["a", "b", None] * 4)
    df.to_csv(src, index=False)
    code, _, err = _main(
        capsys,
        "impute",
        str(src),
        "-o",
        str(dst),
        "--passthrough-non-numeric",
        "-q",
        *_method_args(),
    )
    assert code == 0, err
    assert err == ""  # --quiet
    out = pd.read_csv(dst)
    assert list(out.columns) == list(df.columns)
    # untouched: strings, their missing cell and the string "index" column
    assert out["label"].equals(df["label"])
    assert out["sample"].equals(df["sample"])
    _assert_completed(
        df.drop(columns=["sample", "label"]), out.drop(columns=["sample", "label"])
    )


@needs_method
@pytest.mark.parametrize("suffix", [".tsv", ".csv.gz"])
def test_formats_by_suffix(tmp_path, capsys, suffix):
    src, dst = tmp_path / "in.csv", tmp_path / f"out{suffix}"
    original = _write_table(src, n_rows=15, n_cols=4)
    sep = "\t" if suffix == ".tsv" else ","
    tsv_in = tmp_path / f"in{suffix}"
    original.to_csv(tsv_in, sep=sep)
    code, _, err = _main(
        capsys,
        "impute",
        str(tsv_in),
        "-o",
        str(dst),
        "--index-col",
        "sample",
        *_method_args(),
    )
    assert code == 0, err
    _assert_completed(original, pd.read_csv(dst, sep=sep, index_col=0))


@needs_method
def test_explicit_separator_and_stdout(tmp_path, capsys):
    src = tmp_path / "data.txt"
    src.write_text("1;2;3\n4;;6\n7;8;9\n1;2;\n")
    code, out, err = _main(
        capsys,
        "impute",
        str(src),
        "-o",
        "-",
        "--sep",
        ";",
        "--no-header",
        "-q",
        *_method_args(),
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 4
    rows = np.array([[float(v) for v in line.split(";")] for line in lines])
    assert np.isfinite(rows).all()
    observed = np.array([[1, 2, 3], [4, np.nan, 6], [7, 8, 9], [1, 2, np.nan]])
    np.testing.assert_array_equal(
        rows[~np.isnan(observed)], observed[~np.isnan(observed)]
    )


@needs_method
def test_parquet_roundtrip(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    src, dst = tmp_path / "in.parquet", tmp_path / "out.parquet"
    original = _write_table(tmp_path / "in.csv", n_rows=15, n_cols=4)
    original.to_parquet(src)
    code, _, err = _main(capsys, "impute", str(src), "-o", str(dst), *_method_args())
    assert code == 0, err
    _assert_completed(original, pd.read_parquet(dst))


@needs_method
def test_parquet_without_pyarrow(tmp_path, capsys, monkeypatch):
    src = tmp_path / "in.parquet"
    src.write_bytes(b"PAR1")
    real_find_spec = cli.importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name in ("pyarrow", "fastparquet"):
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(cli.importlib.util, "find_spec", find_spec)
    code, _, err = _main(capsys, "impute", str(src), "-o", "x.csv", *_method_args())
    assert code == 1
    assert "pip install pyarrow" in _one_error_line(err)


@needs_method
def test_all_missing_column_left_empty_and_reported(tmp_path, capsys):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    original = _write_table(src, n_rows=10, n_cols=3)
    original["empty"] = np.nan
    original.to_csv(src)
    code, _, err = _main(
        capsys, "impute", str(src), "-o", str(dst), "--index-col", "0", *_method_args()
    )
    assert code == 0, err
    assert "no observed value left empty: 'empty'" in err
    out = pd.read_csv(dst, index_col=0)
    assert out["empty"].isna().all()
    _assert_completed(original.drop(columns="empty"), out.drop(columns="empty"))


@needs_method
def test_complete_table_is_written_unchanged(tmp_path, capsys):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("a,b\n1,2\n3,4\n")
    code, _, err = _main(capsys, "impute", str(src), "-o", str(dst), *_method_args())
    assert code == 0, err
    assert "nothing to impute" in err
    assert dst.read_text() == src.read_text()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("rank=8", ("rank", 8)),
        ("shrinkage=0.5", ("shrinkage", 0.5)),
        ("hidden_layer_sizes=(64, 32)", ("hidden_layer_sizes", (64, 32))),
        ("solver=als", ("solver", "als")),
        ("solver='als'", ("solver", "als")),
        ("rank=None", ("rank", None)),
        ("early_stopping=False", ("early_stopping", False)),
        ("device = cuda:0", ("device", "cuda:0")),
    ],
)
def test_parse_param(text, expected):
    assert cli.parse_param(text) == expected


@pytest.mark.parametrize("text", ["rank", "=3", "2x=1", ""])
def test_parse_param_rejects(text):
    with pytest.raises(cli.CLIError, match="KEY=VALUE"):
        cli.parse_param(text)


def test_resolve_method_accepts_class_names():
    for name, cls_name in cli.METHODS.items():
        if hasattr(sklearn_mc, cls_name):
            assert cli.resolve_method(name) is getattr(sklearn_mc, cls_name)
            assert cli.resolve_method(cls_name) is getattr(sklearn_mc, cls_name)
            assert cli.resolve_method(name.replace("-", "_").upper()) is getattr(
                sklearn_mc, cls_name
            )


def test_methods_command_lists_every_name(capsys):
    code, out, _ = _main(capsys, "methods")
    assert code == 0
    for name, cls_name in cli.METHODS.items():
        assert name in out and cls_name in out


@needs_method
def test_demo_quick_prints_table(capsys):
    code, out, err = _main(
        capsys, "demo", "--quick", "--methods", FAST_METHOD, "--no-peers"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("| method")
    cls_name = cli.METHODS[FAST_METHOD]
    row = next(line for line in lines if line.startswith(f"| {cls_name} "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    errors = [float(c) for c in cells[1::2]]
    assert len(errors) == 3
    # On the exactly rank-5 example every sensible method beats the column mean.
    assert errors[0] < 0.9


def test_demo_candidates_include_every_export_and_peers():
    args = cli.build_parser().parse_args(["demo", "--quick"])
    labels = [label for label, _ in cli._demo_candidates(args)]
    exported = [n for n in sklearn_mc.__all__ if n in set(cli.METHODS.values())]
    assert set(exported) <= set(labels)
    assert {"sklearn SimpleImputer(mean)", "sklearn KNNImputer"} <= set(labels)


@needs_method
def test_bad_device_is_one_line(tmp_path, capsys):
    src = tmp_path / "in.csv"
    _write_table(src, n_rows=8, n_cols=3)
    out = str(tmp_path / "o.csv")
    args = ["impute", str(src), "-o", out, "--index-col", "0", "--device", "nodevice"]
    code, _, err = _main(capsys, *args, *_method_args())
    assert code == 1
    assert "'nodevice' is not a valid torch device" in _one_error_line(err)
    assert not os.path.exists(out)


@needs_method
def test_seed_makes_output_reproducible(tmp_path, capsys):
    src = tmp_path / "in.csv"
    _write_table(src, n_rows=20, n_cols=4)
    outputs = []
    for k in range(2):
        out = tmp_path / f"o{k}.csv"
        args = [
            "impute",
            str(src),
            "-o",
            str(out),
            "-q",
            "--seed",
            "3",
            "--index-col",
            "0",
        ]
        code, _, err = _main(capsys, *args, *_method_args())
        assert code == 0, err
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]
