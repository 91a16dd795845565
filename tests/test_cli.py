"""The ``sklearn-mc`` command: help, start-up cost, arguments, methods, demo.

The console-script tests run the installed ``sklearn-mc`` executable in a
subprocess (few of them: a start that fits imports torch); the other tests
call :func:`sklearn_mc.cli.main` in-process. See also ``test_cli_io.py``
(reading and writing tables), ``test_cli_impute.py`` (what ``impute`` writes)
and ``test_cli_evaluate.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from cli_helpers import (
    FAST,
    assert_completed,
    one_error_line,
    run_cli,
    run_fresh,
    write_table,
)

from sklearn_mc import _registry, cli
from sklearn_mc.cli import _demo


def _console_script() -> str:
    exe = shutil.which("sklearn-mc")
    if exe is None:
        pytest.skip("the sklearn-mc console script is not installed (pip install -e .)")
    return exe


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run(
        [_console_script(), *args], capture_output=True, text=True, env=env, timeout=300
    )


# ----------------------------------------------------- installed console script
def test_console_help():
    result = _run("--help")
    assert result.returncode == 0, result.stderr
    for word in ("impute", "evaluate", "demo", "methods", "examples:"):
        assert word in result.stdout
    assert result.stderr == ""


def test_console_roundtrip_csv(tmp_path):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    original = write_table(src)
    result = _run("impute", str(src), "-o", str(dst), "--index-col", "0", *FAST)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # progress goes to stderr
    assert f"wrote {dst}" in result.stderr
    assert_completed(original, pd.read_csv(dst, index_col=0))
    assert dst.read_text().splitlines()[0] == src.read_text().splitlines()[0]


def test_help_imports_neither_torch_nor_the_estimators():
    # Issue 16: `sklearn-mc --help` took 20 s because the package imported
    # torch and every estimator. Help must come from the static registry.
    out, heavy = run_fresh(
        "from sklearn_mc.cli import main\n"
        "for argv in (['--help'], ['impute', '--help'], ['evaluate', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n",
        ("torch", "sklearn", "pandas", "sklearn_mc._base"),
    )
    assert heavy == []
    for info in _registry.METHODS:
        assert info.name in out and info.summary in out


def test_import_package_does_not_import_torch():
    code = "import sys, sklearn_mc; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "False", result.stderr


# ------------------------------------------------------------------ in-process
def test_no_command_prints_help(capsys):
    code, out, _ = run_cli(capsys)
    assert code == 0
    assert "usage: sklearn-mc" in out


def test_impute_help_lists_methods(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["impute", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for info in _registry.METHODS:
        assert info.name in out
    for option in ("--passthrough-non-numeric", "--columns", "--clip", "--report"):
        assert option in out


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--method", "nope"], "unknown method 'nope'"),
        (["--param", "no_such_param=1"], "has no parameter 'no_such_param'"),
        (["--param", "=1"], "--param expects KEY=VALUE"),
        (["-o", "out.xyz"], "cannot tell the format of 'out.xyz'"),
        (["--param", "n_neighbors=0"], "n_neighbors"),
        (["--device", "nodevice"], "'nodevice' is not a valid torch device"),
    ],
)
def test_bad_arguments(tmp_path, capsys, extra, expected):
    src = tmp_path / "in.csv"
    write_table(src, n_rows=8, n_cols=3)
    out = tmp_path / "out.csv"
    args = ["impute", str(src), "-o", str(out), *FAST]
    code, _, err = run_cli(capsys, *args, *extra)
    assert code == 1
    assert expected in one_error_line(err)
    assert not out.exists()


def test_missing_file_checked_before_method(tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "impute", str(tmp_path / "no.csv"), "-o", "x.csv", "-m", "nope"
    )
    assert code == 1
    assert "no such file" in one_error_line(err)


def test_traceback_accepted_after_the_command(tmp_path, capsys):
    with pytest.raises(cli.CLIError, match="no such file"):
        cli.main(["impute", str(tmp_path / "no.csv"), "-o", "-", "--traceback"])
    with pytest.raises(cli.CLIError, match="no such file"):
        cli.main(["--traceback", "impute", str(tmp_path / "no.csv"), "-o", "-"])


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


def test_methods_command_lists_every_name(capsys):
    code, out, _ = run_cli(capsys, "methods")
    assert code == 0
    for name, cls in _registry.all_imputers():
        assert name in out and cls.__name__ in out


def test_methods_command_shows_one_method(capsys):
    code, out, _ = run_cli(capsys, "methods", "SVDImputer")
    assert code == 0
    assert out.startswith("svd: SVDImputer")
    assert "  rank='auto'" in out.splitlines()  # one parameter a line
    code, _, err = run_cli(capsys, "methods", "nope")
    assert code == 1 and "unknown method 'nope'" in one_error_line(err)


def test_demo_quick_prints_table(capsys):
    code, out, err = run_cli(
        capsys, "demo", "--quick", "--methods", "knn", "--no-peers"
    )
    assert code == 0, err
    assert "[1/3] KNNImputer" in err
    lines = out.splitlines()
    assert lines[0].startswith("| method")
    row = next(line for line in lines if line.startswith("| KNNImputer "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    errors = [float(c) for c in cells[1::2]]
    assert len(errors) == 3
    # On the exactly rank-5 example every sensible method beats the column mean.
    assert errors[0] < 0.9


def test_demo_candidates_include_every_export_and_peers():
    args = cli.build_parser().parse_args(["demo", "--quick"])
    labels = [label for label, _ in _demo.demo_candidates(args)]
    assert [cls.__name__ for _, cls in _registry.all_imputers()] == labels[:-3]
    assert {"sklearn SimpleImputer(mean)", "sklearn KNNImputer"} <= set(labels)
