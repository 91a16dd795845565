"""``sklearn-mc``: reading and writing tables (formats, stdin/stdout, encodings,
atomic output, checks made before the fit). Defects D1, D9, D13 and D15 of the
reliability probe each have a regression test here."""

from __future__ import annotations

import io
import os
import sys

import numpy as np
import pandas as pd
import pytest
from cli_helpers import FAST, assert_completed, one_error_line, run_cli, write_table

from sklearn_mc.cli import _impute, _io


@pytest.fixture
def no_fit(monkeypatch):
    """Make any fit fail loudly: checks that must come first are proved first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the estimator was fitted before the check")

    monkeypatch.setattr(_impute, "warn_if_slow", refuse)


def _parts(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


# ----------------------------------------------------------------- D1: atomic
def test_failed_write_leaves_the_input_intact(tmp_path, capsys, monkeypatch):
    # D1: `-o` = the input and a write that fails half-way used to leave the
    # input holding only its header.
    data = tmp_path / "data.csv"
    write_table(data, n_rows=12)
    before = data.read_bytes()
    real = pd.DataFrame.to_csv

    def fail_half_way(self, path=None, *args, **kwargs):
        real(self.iloc[:2], path, *args, **kwargs)
        raise OSError("No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail_half_way)
    code, _, err = run_cli(
        capsys, "impute", str(data), "-o", str(data), "--index-col", "0", *FAST
    )
    assert code == 1
    assert "No space left on device" in one_error_line(err)
    assert data.read_bytes() == before
    assert _parts(tmp_path) == []  # the temporary file is removed


def test_in_place_success_replaces_the_file_and_keeps_its_mode(tmp_path, capsys):
    data = tmp_path / "data.csv"
    original = write_table(data, n_rows=12)
    os.chmod(data, 0o640)
    code, _, err = run_cli(
        capsys, "impute", str(data), "-o", str(data), "--index-col", "0", *FAST
    )
    assert code == 0, err
    assert_completed(original, pd.read_csv(data, index_col=0))
    assert data.stat().st_mode & 0o777 == 0o640
    assert _parts(tmp_path) == []


# ------------------------------------------------- D9: checks before the fit
@pytest.mark.parametrize(
    "output, extra, expected",
    [
        ("nodir/out.csv", [], "folder"),
        ("out.csv", ["--float-format", "%q"], "bad --float-format '%q'"),
        ("out.csv", ["--float-format", "%.2f%%"], "bad --float-format"),
        ("out.parquet", ["--float-format", "%.2f"], "not Parquet"),
        ("sub.csv", [], "is a directory"),
        ("out.csv", ["--report", "nodir/r.txt"], "folder"),
    ],
)
def test_output_checked_before_the_fit(
    tmp_path, capsys, no_fit, output, extra, expected
):
    src = tmp_path / "in.csv"
    write_table(src, n_rows=8)
    (tmp_path / "sub.csv").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run_cli(
        capsys, "impute", str(src), "-o", str(tmp_path / output), *extra, *FAST
    )
    assert code == 1
    assert expected in one_error_line(err)
    assert "fitting" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_parquet_without_pyarrow_fails_before_the_fit(tmp_path, capsys, monkeypatch):
    src = tmp_path / "in.csv"
    write_table(src, n_rows=8)
    real = _io.importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name in ("pyarrow", "fastparquet"):
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(_io.importlib.util, "find_spec", find_spec)
    out = tmp_path / "out.parquet"
    code, _, err = run_cli(capsys, "impute", str(src), "-o", str(out), *FAST)
    assert code == 1
    assert "pip install pyarrow" in one_error_line(err)
    assert "fitting" not in err and not out.exists()


# ----------------------------------------------------------- D13: encodings
@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-32"])
def test_text_with_a_byte_order_mark_is_read(tmp_path, capsys, encoding):
    # D13: a UTF-16 file was reported as "ragged rows".
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_bytes("a,b\n1,\n3,4\n5,6\n".encode(encoding))
    code, _, err = run_cli(capsys, "impute", str(src), "-o", str(dst), *FAST)
    assert code == 0, err
    out = pd.read_csv(dst)
    assert list(out.columns) == ["a", "b"]
    assert out.notna().all().all() and out["a"].tolist() == [1, 3, 5]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("a,b\n1,\n3,4\n".encode("utf-16-le"), "NUL bytes"),
        ("a,caf\u00e9\n1,\n3,4\n".encode("latin-1"), "not a UTF-8 text file"),
    ],
)
def test_undecodable_text_is_named(tmp_path, capsys, raw, expected):
    src = tmp_path / "in.csv"
    src.write_bytes(raw)
    code, _, err = run_cli(capsys, "impute", str(src), "-o", "-", *FAST)
    assert code == 1
    assert expected in one_error_line(err)


# ------------------------------------------------------- D15: duplicate names
def test_duplicate_column_names_are_an_error(tmp_path, capsys):
    # D15: `a,a,b` came back as `a,a.1,b`, silently.
    src, dst = tmp_path / "dup.csv", tmp_path / "out.csv"
    src.write_text("a,a,b\n1,,3\n4,5,\n7,8,9\n")
    code, _, err = run_cli(capsys, "impute", str(src), "-o", str(dst), *FAST)
    assert code == 1
    assert "duplicate column name 'a' (columns 0 and 1" in one_error_line(err)
    assert not dst.exists()


# ------------------------------------------------------------- stdin, stdout
def test_stdin_to_stdout(tmp_path, capsys, monkeypatch):
    # The input used to be read twice, so a pipe looked empty the second time.
    text = "a,b,c\n1,2,3\n4,,6\n7,8,9\n1,2,\n"
    code, out, err = run_cli(
        capsys, "impute", "-", "-o", "-", "-q", *FAST,
        stdin=text.encode(), monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 0, err
    assert err == ""
    result = pd.read_csv(io.StringIO(out))
    observed = pd.read_csv(io.StringIO(text))
    assert_completed(observed, result)


def test_stdin_tsv_to_file(tmp_path, capsys, monkeypatch):
    dst = tmp_path / "out.tsv"
    text = "a\tb\n1\t2\n\t4\n5\t6\n"
    code, _, err = run_cli(
        capsys, "impute", "-", "--sep", "\\t", "-o", str(dst), *FAST,
        stdin=text.encode(), monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 0, err
    assert pd.read_csv(dst, sep="\t").notna().all().all()


def test_stdout_is_written_in_one_piece(tmp_path, capsys, monkeypatch):
    # A failure while formatting must not leave half a table on stdout.
    src = tmp_path / "in.csv"
    write_table(src, n_rows=8)
    real = pd.DataFrame.to_csv

    def fail(self, path=None, *args, **kwargs):
        real(self.iloc[:2], path, *args, **kwargs)
        raise OSError("boom")

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail)
    code, out, err = run_cli(capsys, "impute", str(src), "-o", "-", *FAST)
    assert code == 1 and out == ""


# -------------------------------------------------------------- other inputs
@pytest.mark.parametrize(
    "content, expected",
    [
        ("a,b\n1,2\n3,4,5\n", "ragged rows: line 3 has 3 fields"),
        ("", "empty file"),
        ("a,b,c\n1,x,3\n4,5,6\n", "column 'b' is not numeric (e.g. 'x')"),
        ("a,b\n,\n,\n", "no observed value"),
        ("a,b\n", "no data rows"),
    ],
)
def test_bad_content(tmp_path, capsys, content, expected):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    out_path = str(tmp_path / "o.csv")
    code, _, err = run_cli(capsys, "impute", str(path), "-o", out_path, *FAST)
    assert code == 1
    assert expected in one_error_line(err)


@pytest.mark.parametrize("suffix", [".tsv", ".csv.gz", ".csv.zip"])
def test_formats_by_suffix(tmp_path, capsys, suffix):
    original = write_table(tmp_path / "plain.csv", n_rows=15)
    sep = "\t" if suffix == ".tsv" else ","
    src, dst = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    original.to_csv(src, sep=sep)
    code, _, err = run_cli(
        capsys, "impute", str(src), "-o", str(dst), "--index-col", "sample", *FAST
    )
    assert code == 0, err
    assert_completed(original, pd.read_csv(dst, sep=sep, index_col=0))


def test_explicit_separator_no_header(tmp_path, capsys):
    src = tmp_path / "data.txt"
    src.write_text("1;2;3\n4;;6\n7;8;9\n1;2;\n")
    code, out, err = run_cli(
        capsys, "impute", str(src), "-o", "-", "--sep", ";", "--no-header", "-q", *FAST
    )
    assert code == 0, err
    rows = np.array([[float(v) for v in line.split(";")] for line in out.split()])
    observed = np.array([[1, 2, 3], [4, np.nan, 6], [7, 8, 9], [1, 2, np.nan]])
    known = ~np.isnan(observed)
    assert np.isfinite(rows).all()
    np.testing.assert_array_equal(rows[known], observed[known])


def test_parquet_roundtrip(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    src, dst = tmp_path / "in.parquet", tmp_path / "out.parquet"
    original = write_table(tmp_path / "in.csv", n_rows=15)
    original.to_parquet(src)
    code, _, err = run_cli(capsys, "impute", str(src), "-o", str(dst), *FAST)
    assert code == 0, err
    assert_completed(original, pd.read_parquet(dst))


def test_complete_table_is_written_unchanged(tmp_path, capsys):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("a,b\n1,2\n3,4\n")
    code, _, err = run_cli(capsys, "impute", str(src), "-o", str(dst), *FAST)
    assert code == 0, err
    assert "nothing to impute" in err
    assert dst.read_text() == src.read_text()


def test_stdin_is_not_a_file_path(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a\n1\n")))
    df, kind = _io.read_table("-")
    assert kind == "," and df["a"].tolist() == [1]
