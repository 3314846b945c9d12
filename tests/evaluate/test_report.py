"""Tests for the metrics report writers (json, csv, markdown)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from samqa_framework.data.mot import MotTable
from samqa_framework.evaluate.report import TABLE_COLUMNS, format_csv, format_table, write_report
from samqa_framework.evaluate.trackeval_runner import COMBINED, METRIC_KEYS, evaluate_tables


def _metrics() -> dict:
    return {
        "seqB": {"HOTA": 57.73502691896258, "DetA": 100.0, "AssA": 33.33333333333333, "IDF1": 50.0,
                 "IDP": 50.0, "IDR": 50.0, "MOTA": 90.0, "IDSW": 2, "MT": 2},
        COMBINED: {"HOTA": 61.23456789, "DetA": 99.99951, "AssA": 37.5, "IDF1": 55.55555, "IDP": 56.0,
                   "IDR": 55.1, "MOTA": 91.25, "IDSW": 3, "MT": 3},
        "seqA": {"HOTA": 64.0, "DetA": 99.9990, "AssA": 41.0, "IDF1": 61.0, "IDP": 62.0, "IDR": 60.0,
                 "MOTA": 92.5, "IDSW": 1, "MT": 1},
    }


def test_write_report_writes_three_files(tmp_path: Path):
    paths = write_report(_metrics(), tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"metrics.json", "metrics.csv", "metrics.md"}
    assert paths == {"json": tmp_path / "out" / "metrics.json", "csv": tmp_path / "out" / "metrics.csv",
                     "md": tmp_path / "out" / "metrics.md"}

    data = json.loads(paths["json"].read_text())
    assert list(data) == ["seqB", "seqA", COMBINED]  # given order, COMBINED last
    assert data["seqB"]["HOTA"] == 57.735 and data["seqB"]["AssA"] == 33.333
    assert data[COMBINED]["DetA"] == 100.0 and data[COMBINED]["IDF1"] == 55.556
    assert data["seqB"]["IDSW"] == 2 and isinstance(data["seqB"]["IDSW"], int)

    rows = list(csv.DictReader(paths["csv"].read_text().splitlines()))
    assert [r["sequence"] for r in rows] == ["seqB", "seqA", COMBINED]
    assert rows[0]["HOTA"] == "57.735" and rows[0]["IDSW"] == "2"
    header = paths["csv"].read_text().splitlines()[0].split(",")
    assert header[:4] == ["sequence", "HOTA", "DetA", "AssA"]  # METRIC_KEYS order

    assert paths["md"].read_text() == format_table(_metrics())


def test_format_table_is_markdown_with_the_paper_columns():
    text = format_table(_metrics())
    lines = text.strip().splitlines()
    assert len(lines) == 2 + 3
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["sequence", *TABLE_COLUMNS]
    assert TABLE_COLUMNS == ("HOTA", "DetA", "AssA", "IDF1", "IDP", "IDR", "MOTA", "IDSW")
    assert set(lines[1].replace("|", "").replace(" ", "")) <= {"-", ":"}
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [r[0] for r in cells] == ["seqB", "seqA", COMBINED]
    assert cells[0][1:] == ["57.7", "100.0", "33.3", "50.0", "50.0", "50.0", "90.0", "2"]
    assert cells[2][2] == "100.0"  # 99.99951 rounds up at one decimal
    assert len({len(line) for line in lines}) == 1  # columns aligned


def test_format_table_marks_missing_values():
    text = format_table({"s": {"HOTA": 50.0}}, columns=("HOTA", "IDF1"), digits=2)
    assert text.splitlines()[2].replace(" ", "") == "|s|50.00|-|"


def test_format_csv_keeps_unknown_metrics_last():
    text = format_csv({"s": {"extra": 1.23456, "HOTA": 50.0}})
    assert text.splitlines() == ["sequence,HOTA,extra", "s,50.0,1.235"]


def test_empty_metrics_are_rejected(tmp_path: Path):
    with pytest.raises(ValueError, match="no metrics"):
        write_report({}, tmp_path)
    assert not list(tmp_path.iterdir())


def test_report_of_a_real_evaluation_round_trips(tmp_path: Path):
    gt = MotTable([1, 1, 2, 2], [1, 2, 1, 2], [[0, 0, 10, 10], [50, 0, 10, 10]] * 2)
    pred = MotTable([1, 1, 2], [5, 6, 5], [[0, 0, 10, 10], [50, 0, 10, 10], [0, 0, 10, 10]])
    metrics = evaluate_tables({"s": gt}, {"s": pred}, {"s": 2})
    write_report(metrics, tmp_path)
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert set(data) == {"s", COMBINED}
    assert set(data["s"]) == set(METRIC_KEYS)
    assert data["s"]["MOTA"] == 75.0 and data["s"]["FN"] == 1 and data["s"]["IDSW"] == 0
    assert "| s " in (tmp_path / "metrics.md").read_text()


def test_write_report_failure_between_files_keeps_the_old_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_report(_metrics(), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    changed = {k: {**v, "IDF1": 1.0} for k, v in _metrics().items()}

    def broken(*args, **kwargs):  # metrics.json is written, then the markdown fails
        raise OSError("disk full")

    monkeypatch.setattr("samqa_framework.evaluate.report.format_table", broken)
    with pytest.raises(OSError, match="disk full"):
        write_report(changed, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
