"""The benchmark harness: a ``--quick`` run never replaces the full run's files.

``benchmarks/_common.py`` is the one home of the results paths; the tabular
benchmark's report is built from cached fits (``--report-only``), so this
runs no fit at all.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks")


@pytest.fixture
def bench_tabular(monkeypatch, tmp_path):
    import torch

    monkeypatch.syspath_prepend(BENCHMARKS)
    common = importlib.import_module("_common")
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    # main() pins threads for a benchmark run; the test process keeps its own
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    module = importlib.import_module("bench_tabular")
    yield module
    sys.modules.pop("bench_tabular", None)


def _records():
    rmse = {
        ("t1", "sk:mean"): 1.0,
        ("t1", "SVDImputer"): 0.8,
        ("t1", "KNNImputer"): 0.9,
        ("t2", "sk:mean"): 1.0,
        ("t2", "SVDImputer"): 1.1,
        ("t2", "KNNImputer"): 0.7,
    }
    return [
        {
            "table": table,
            "pattern": "random",
            "rate": 0.2,
            "seed": 0,
            "method": method,
            "fit_s": 0.5,
            "cpu_s": 0.25,
            "rmse": value,
        }
        for (table, method), value in rmse.items()
    ]


def test_quick_report_writes_quick_files_only(bench_tabular, tmp_path):
    raw = {"records": _records(), "notes": ["a note"]}
    (tmp_path / "tabular_quick_raw.json").write_text(json.dumps(raw))
    bench_tabular.main(["--report-only", "--quick"])
    assert not (tmp_path / "tabular.md").exists()
    text = (tmp_path / "tabular_quick.md").read_text()
    assert "- a note" in text
    # the method worse than the mean on t2 is named, with its ratio
    assert "| SVDImputer | 2 | 1.1 | t2/random/20%/seed 0 |" in text
    assert "| KNNImputer | 2 | 0.9 | t1/random/20%/seed 0 |" in text
    pytest.importorskip("matplotlib")
    assert (tmp_path / "tabular_rank_quick.png").exists()
    assert "(tabular_rank_quick.png)" in text
    assert not (tmp_path / "tabular_rank.png").exists()


def test_full_report_reads_named_raw_files(bench_tabular, tmp_path):
    records = _records()
    (tmp_path / "a.json").write_text(json.dumps({"records": records[:3], "notes": []}))
    (tmp_path / "b.json").write_text(json.dumps({"records": records[3:], "notes": []}))
    bench_tabular.main(["--report-only", "--raw", "a.json", str(tmp_path / "b.json")])
    text = (tmp_path / "tabular.md").read_text()
    assert not (tmp_path / "tabular_quick.md").exists()
    assert "Ranks are over the 2 fits (of 2)" in text


def test_results_paths_live_only_in_the_harness():
    # every benchmark writes through _common (report_path / write_report), so
    # a quick run's suffix and the results folder are decided in one place
    import re

    offenders = []
    for name in sorted(os.listdir(BENCHMARKS)):
        if not (name.startswith("bench_") and name.endswith(".py")):
            continue
        with open(os.path.join(BENCHMARKS, name)) as f:
            source = f.read()
        if re.search(r"^RESULTS\s*=|/\s*\"results\"|'results'\s*\)", source, re.M):
            offenders.append(name)
    assert offenders == []
