"""Reading and writing tables: formats, encodings, checks and atomic output.

A text input is read into memory once (a pipe can be read only once) and
decoded here, so that the shape check and pandas see the same text and an
encoding problem is named as such. An output is checked before the fit
(folder, format, Parquet engine, ``--float-format``) and written to a
temporary file in the target's folder that is renamed over the target only
once it is complete: a failed run leaves the target (possibly the input
itself) as it was.
"""

from __future__ import annotations

import codecs
import csv
import importlib.util
import io
import os
import sys
import tempfile
from contextlib import suppress
from pathlib import Path

from ._common import CLIError, one_line

#: file suffixes and the separator they imply ("parquet" for Parquet files).
FORMATS = {
    ".csv": ",",
    ".tsv": "\t",
    ".tab": "\t",
    ".parquet": "parquet",
    ".pq": "parquet",
}
#: compression suffixes and pandas' name for them.
COMPRESSION = {
    ".gz": "gzip",
    ".bz2": "bz2",
    ".zip": "zip",
    ".xz": "xz",
    ".zst": "zstd",
}
#: byte-order marks and the codec that reads them (UTF-32 before UTF-16:
#: the UTF-32-LE mark starts with the UTF-16-LE one).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
STDIO = "-"


def file_kind(path: str, sep: str | None) -> str:
    """The separator of a text file, or ``"parquet"``.

    Examples
    --------
    >>> file_kind("data.tsv.gz", None) == "\\t"
    True
    >>> file_kind("data.txt", ";")
    ';'
    """
    if sep is not None:
        return "\t" if sep in ("\\t", "tab", "TAB") else sep
    if path == STDIO:
        return ","
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSION:
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in FORMATS:
        return FORMATS[suffix]
    raise CLIError(
        f"cannot tell the format of {path!r} from its suffix; use .csv, .tsv or "
        ".parquet, or give --sep"
    )


def output_kind(output: str, input_path: str, sep: str | None) -> str:
    """Format of the output: its suffix, else --sep; stdout gets the input's."""
    if output == STDIO:
        kind = file_kind(input_path, sep)
        return "," if kind == "parquet" else kind
    try:
        return file_kind(output, None)
    except CLIError:
        if sep is None:
            raise
        return file_kind(output, sep)


def need_parquet() -> None:
    """Refuse Parquet early when no engine is installed."""
    if importlib.util.find_spec("pyarrow") is None and (
        importlib.util.find_spec("fastparquet") is None
    ):
        raise CLIError(
            "Parquet files need pyarrow: pip install pyarrow (or use CSV/TSV)"
        )


def check_input_path(path: str) -> None:
    """A clear error for a missing input or a folder given as input."""
    if path == STDIO:
        return
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a directory, not a file")


def check_float_format(fmt: str | None) -> None:
    """Refuse a ``--float-format`` that does not print one number."""
    if fmt is None:
        return
    try:
        text = fmt % 1.5
        float(text)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CLIError(
            f"bad --float-format {fmt!r} ({one_line(exc)}); use a printf-style "
            "format of one number such as '%.6g' or '%.2f'"
        ) from exc


def check_output(path: str, kind: str, *, what: str = "output") -> None:
    """Check that ``path`` can be written, before any work is done.

    Parameters
    ----------
    path : str
        The target file, or ``"-"`` for standard output / error.
    kind : str
        Its format (a separator or ``"parquet"``).
    what : str, default="output"
        How the error message names the file.
    """
    if kind == "parquet":
        need_parquet()
    if path == STDIO:
        return
    target = Path(path)
    if target.is_dir():
        raise CLIError(f"{path}: is a directory; give a file name for the {what}")
    folder = target.parent
    if not folder.is_dir():
        raise CLIError(f"{path}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CLIError(f"{path}: cannot write in folder {str(folder)!r}")
    if target.exists() and not os.access(target, os.W_OK):
        raise CLIError(f"{path}: the file exists and is read-only")


# -------------------------------------------------------------------- reading
def _decode(raw: bytes, path: str) -> str:
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(codec)
            except UnicodeDecodeError as exc:
                raise CLIError(
                    f"{path}: not valid {codec} text ({exc.reason} at byte {exc.start})"
                ) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CLIError(
            f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start}); "
            "save it as UTF-8, e.g. iconv -f latin1 -t utf-8"
        ) from exc
    if "\x00" in text:
        raise CLIError(
            f"{path}: contains NUL bytes: UTF-16/UTF-32 text without a byte-order "
            "mark, or not a text file; save it as UTF-8"
        )
    return text


def _read_bytes(path: str) -> bytes:
    if path == STDIO:
        return sys.stdin.buffer.read()
    suffix = Path(path).suffix.lower()
    if suffix not in COMPRESSION:
        return Path(path).read_bytes()
    from pandas.io.common import get_handle

    try:
        with get_handle(path, "rb", compression="infer", is_text=False) as handles:
            return handles.handle.read()
    except (OSError, EOFError, ValueError) as exc:
        raise CLIError(f"{path}: cannot decompress ({one_line(exc)})") from exc


def _check_shape(text: str, path: str, sep: str, header: bool) -> None:
    """Refuse ragged rows (pandas pads them) and duplicate column names."""
    if len(sep) != 1:
        return  # regex separators: left to pandas
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    width = None
    for row in reader:
        if not row:
            continue  # blank lines are skipped by pandas too
        if width is None:
            width = len(row)
            if header:
                _check_unique(row, path)
        elif len(row) != width:
            raise CLIError(
                f"{path}: ragged rows: line {reader.line_num} has {len(row)} "
                f"fields, the first line has {width}"
            )


def _check_unique(names, path: str) -> None:
    """Duplicate names are an error: pandas would rename them ``a.1``."""
    seen: dict[str, int] = {}
    for k, name in enumerate(names):
        name = str(name)
        if name == "":
            continue  # pandas names blank headers "Unnamed: k", all different
        if name in seen:
            raise CLIError(
                f"{path}: duplicate column name {name!r} (columns {seen[name]} and "
                f"{k}, counting from 0); give each column a unique name"
            )
        seen[name] = k


def parse_index_col(text: str | None):
    """``"0,id"`` -> ``[0, "id"]`` (None when not given)."""
    if text is None:
        return None
    cols = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        cols.append(int(part) if part.lstrip("-").isdigit() else part)
    return cols or None


def read_table(
    path: str,
    *,
    sep: str | None = None,
    index_col: str | None = None,
    header: bool = True,
    na_values: str | None = None,
):
    """Read ``path`` (``"-"``: stdin) into a DataFrame, checking its shape.

    Integer columns are read as pandas' nullable ``Int64`` (so that a column
    of integers with holes is known to be integer); other numeric columns as
    ``float64``.

    Returns
    -------
    df : pandas.DataFrame
    kind : str
        The separator, or ``"parquet"``.
    """
    import pandas as pd

    check_input_path(path)
    kind = file_kind(path, sep)
    index_cols = parse_index_col(index_col)
    if kind == "parquet":
        need_parquet()
        source = io.BytesIO(sys.stdin.buffer.read()) if path == STDIO else path
        try:
            df = pd.read_parquet(source, dtype_backend="numpy_nullable")
        except Exception as exc:
            raise CLIError(f"{path}: not a readable Parquet file ({exc})") from exc
        _check_unique(df.columns, path)
        if index_cols is not None:
            names = [df.columns[c] if isinstance(c, int) else c for c in index_cols]
            missing = [n for n in names if n not in df.columns]
            if missing:
                raise CLIError(f"{path}: no index column {missing[0]!r}")
            df = df.set_index(names)
        return _plain_floats(df), kind
    text = _decode(_read_bytes(path), path)
    if not text.strip():
        raise CLIError(f"{path}: empty file")
    _check_shape(text, path, kind, header)
    extra_na = None
    if na_values:
        extra_na = [v for v in na_values.split(",") if v != ""] or None
    try:
        df = pd.read_csv(
            io.StringIO(text),
            sep=kind,
            header=0 if header else None,
            index_col=index_cols,
            na_values=extra_na,
            engine="c" if len(kind) == 1 else "python",
            dtype_backend="numpy_nullable",
        )
    except pd.errors.EmptyDataError as exc:
        raise CLIError(f"{path}: empty file") from exc
    except pd.errors.ParserError as exc:
        raise CLIError(f"{path}: cannot parse ({one_line(exc)})") from exc
    except (IndexError, KeyError, ValueError) as exc:
        if index_cols is not None:
            raise CLIError(f"{path}: bad --index-col {index_col!r} ({exc})") from exc
        raise
    return _plain_floats(df), kind


def _plain_floats(df):
    """Nullable ``Float64`` columns as NumPy ``float64`` (NaN for missing)."""
    import numpy as np
    import pandas as pd

    for col in df.columns:
        if isinstance(df[col].dtype, pd.Float64Dtype | pd.Float32Dtype):
            df[col] = df[col].to_numpy(dtype=np.float64, na_value=np.nan)
    return df


# -------------------------------------------------------------------- writing
def _new_file_mode(target: Path) -> int:
    if target.exists():
        return target.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _compression(target: Path):
    suffix = target.suffix.lower()
    method = COMPRESSION.get(suffix)
    if method == "zip":
        return {"method": "zip", "archive_name": target.stem}
    return method


def _replace_atomically(target: Path, write) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``target``, then rename.

    On any failure the temporary file is removed and ``target`` is untouched.
    """
    fd, tmp = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _new_file_mode(target))
        os.replace(tmp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def write_table(df, path: str, kind: str, *, header: bool) -> None:
    """Write ``df`` like the input was read, atomically.

    The index is written only if it carries data. A file target is written to
    a temporary file in its folder, flushed to disk and renamed over the
    target; on any failure the temporary file is removed and the target is
    untouched. ``"-"`` writes CSV to standard output, in one piece.
    """
    import pandas as pd

    write_index = not isinstance(df.index, pd.RangeIndex) or df.index.name is not None
    options = dict(sep=kind, header=header, index=write_index, lineterminator="\n")
    if path == STDIO:
        buffer = io.StringIO()
        df.to_csv(buffer, **options)
        sys.stdout.write(buffer.getvalue())
        sys.stdout.flush()
        return
    target = Path(path)

    def write(tmp: str) -> None:
        if kind == "parquet":
            need_parquet()
            out = df.copy()
            out.columns = [str(c) for c in out.columns]
            out.to_parquet(tmp, index=write_index)
        else:
            df.to_csv(tmp, compression=_compression(target), **options)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())

    _replace_atomically(target, write)


def write_text(text: str, path: str) -> None:
    """Write a report: ``"-"`` is stderr; a file is written atomically."""
    if path == STDIO:
        sys.stderr.write(text)
        sys.stderr.flush()
        return

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)

    _replace_atomically(Path(path), write)
