"""The study's results: one row per job (``row.json``), gathered into Table 2, ``results.json``, CSV and figures.

A row: ``method`` (Table 2's name), ``annotator`` (the config), ``dataset``, ``IDF1``, ``HOTA`` (the paper's
tracker setting), ``interventions_per_100_frames``, ``status`` ok | skipped | failed, ``reason``; plus the
Table 2 columns (zero-shot, post-processing, prompt interval), the other tracker variants, the label quality,
the detector's final metrics, each stage's cache key, folder and wall time.
"""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import os
import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tabulate import tabulate

from samqa_framework.evaluate.plots import bar_chart, line_chart
from samqa_framework.utils.io import atomic_files, atomic_write_json

ROW_FILE = "row.json"
RESULT_KEYS = ("method", "dataset", "IDF1", "HOTA", "interventions_per_100_frames", "status", "reason")
# What differs between two runs of one config (folders, times, whether a stage came from the cache): kept out of
# results.json, so the same config gives the same file byte for byte, and written to runs.json instead.
RUN_KEYS = ("job_dir", "wall_s", "stages", "detector_curves", "machine")


# The libraries whose kernels or defaults decide what trains (make venv pins them all: constraints.txt).
VERSIONED = ("torch", "numpy", "opencv-python", "ultralytics", "timm", "lightning", "segment-anything",
             "segmentation-models-pytorch", "onnxruntime")


def machine() -> dict[str, Any]:
    """The CPU a job ran on, as far as it decides the numbers: the same config gives the same results on one kind of
    machine, but training on another CPU takes other float kernels (oneDNN / ATen pick them by instruction set) and
    a detector's scores move within their seeds' spread (two make study runs, README); so do other library versions."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name)
    except OSError:
        pass
    versions = {}
    for package in VERSIONED:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"cpu": name, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "versions": versions}


def base_row(cfg: DictConfig, method: Mapping[str, Any]) -> dict[str, Any]:
    return {"method": method.get("label", method["annotator"]), "annotator": method["annotator"],
            "dataset": str(cfg.data.name), "IDF1": None, "HOTA": None, "interventions_per_100_frames": None,
            "status": "failed", "reason": "", "zero_shot": method.get("zero_shot", "-"),
            "post_processing": method.get("post_processing", "-"), "prompt_interval": method.get("prompt_interval"),
            "job_dir": str(cfg.paths.output_dir), "machine": machine()}


def write_row(out_dir: str | os.PathLike[str], row: Mapping[str, Any]) -> Path:
    path = Path(out_dir) / ROW_FILE
    atomic_write_json(path, dict(row))
    return path


def collect_rows(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every job's row under ``root`` (a run dir, or a multirun's sweep dir), in job order."""
    paths = sorted(Path(root).rglob(ROW_FILE), key=lambda p: [int(s) if s.isdigit() else s
                                                              for s in p.relative_to(root).parts])
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


def _fmt(v: Any, sd: float | None = None) -> str:
    """A table cell: one decimal; ``mean ± sd`` when the figure is a mean over seeds."""
    text = "-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)
    return text if sd is None or v is None else f"{text} ± {sd:.1f}"


def _prompting(rows: Sequence[Mapping[str, Any]], n_datasets: int = 1) -> str:
    """Table 2's "Prompt interval" column for one method's rows (one per data set, in column order): the fixed
    interval, else SAM-QA's measured interventions per 100 frames (its prompts follow the checks, not a clock),
    e.g. ``4.6, 3.5 / 100 frames`` for two data sets. When the figures do not cover all ``n_datasets`` columns,
    each names its data set (``mice 2.0 / 100 frames``), so a lone figure is not read as another column's."""
    fixed = list(dict.fromkeys(str(r["prompt_interval"]) for r in rows if r.get("prompt_interval")))
    if fixed:
        return " / ".join(fixed)
    ipf = [(r["dataset"], r["interventions_per_100_frames"]) for r in rows
           if r.get("annotator", "").startswith("samqa") and r.get("interventions_per_100_frames") is not None]
    if not ipf:
        return "-"
    named = n_datasets > 1 and len(ipf) < n_datasets
    return ", ".join(f"{d} {v:.1f}" if named else f"{v:.1f}" for d, v in ipf) + " / 100 frames"


# A diagnosis sentence ends with its figures, "(max conf 0.78, median 0.37)"; seeds that fail for one reason are
# told once, their figures as ranges.
_FIGURES = re.compile(r" \(max conf [^()]*\)$")


def _span(values: Sequence[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}-{hi:.2f}"


def diagnosis_note(diagnosis: Mapping[str, Any] | None) -> str:
    """A tracker variant's diagnosis (``variants.<name>.diagnosis``) as one phrase per reason, e.g. ``3/3 seeds:
    no track started: no detection >= new_track_thresh 0.9 (max conf 0.75-0.78, median 0.34-0.37)``; a single
    detector's diagnosis is its sentence. Empty when nothing needs explaining."""
    per_seed = (diagnosis or {}).get("per_seed")
    if not per_seed:
        return (diagnosis or {}).get("why") or ""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for figures in per_seed.values():
        if figures and figures.get("why"):
            groups.setdefault(_FIGURES.sub("", figures["why"]), []).append(figures)
    parts = []
    for reason, seeds in groups.items():
        tops = [f["max_conf"] for f in seeds if f.get("max_conf") is not None]
        mids = [f["median_conf"] for f in seeds if f.get("median_conf") is not None]
        spread = f" (max conf {_span(tops)}, median {_span(mids)})" if tops and mids else ""
        parts.append(f"{len(seeds)}/{len(per_seed)} seeds: {reason}{spread}")
    return "; ".join(parts)


def table2(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Table 2: one line per method, IDF1 and HOTA per data set; skipped / failed jobs say why."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    methods: dict[tuple, dict[str, Mapping[str, Any]]] = {}
    for r in rows:
        methods.setdefault((r["method"], r.get("prompt_interval")), {})[r["dataset"]] = r
    header = ["method", "zero-shot", "post-processing", "prompt interval"]
    header += [f"{d} {m}" for d in datasets for m in ("IDF1", "HOTA")] + ["notes"]
    lines = []
    for (_name, _interval), by_ds in methods.items():
        first = next(iter(by_ds.values()))
        line = [first["method"], str(first.get("zero_shot", "-")), str(first.get("post_processing", "-")),
                _prompting([by_ds[d] for d in datasets if d in by_ds], len(datasets))]
        notes: dict[str, list[str]] = {}  # a reason -> the data sets it holds for, told once
        for d in datasets:
            r = by_ds.get(d)
            if r is None:
                line += ["", ""]
            elif r["status"] == "ok":
                line += [_fmt(r["IDF1"], r.get("IDF1_sd")), _fmt(r["HOTA"], r.get("HOTA_sd"))]
                why = diagnosis_note(r.get("diagnosis"))
                if why:  # a zero or a low score says why, with the detector's figures against the tracker's
                    notes.setdefault(why, []).append(d)
            else:
                line += [r["status"], r["status"]]
                notes.setdefault(r["reason"], []).append(d)
        lines.append([*line, "; ".join(f"{', '.join(ds)}: {why}" for why, ds in notes.items())])
    return header, lines


def variants_table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """IDF1 / HOTA of every tracker variant side by side (paper setting, known animal count, detection boxes)."""
    ok = [r for r in rows if r["status"] == "ok" and r.get("variants")]
    names = list(dict.fromkeys(v for r in ok for v in r["variants"]))
    header = ["method", "dataset", *[f"{v} {m}" for v in names for m in ("IDF1", "HOTA")], "zeros"]
    lines = []
    for r in ok:
        cells = [_fmt(r["variants"].get(v, {}).get(m), r["variants"].get(v, {}).get(f"{m}_sd"))
                 for v in names for m in ("IDF1", "HOTA")]
        lines.append([r["method"], r["dataset"], *cells, _zeros(r["variants"])])
    return header, lines


def headline_variant(rows: Sequence[Mapping[str, Any]]) -> str:
    """Which tracker variant Table 2's IDF1 / HOTA columns hold (``study.primary_variant``), in words."""
    names = list(dict.fromkeys(r["tracker_variant"] for r in rows if r.get("tracker_variant")))
    if not names:  # results.json from before rows named it: the variant whose figures are the columns' in every row
        ok = [r for r in rows if r["status"] == "ok" and r.get("variants")]
        names = [v for v in (ok[0]["variants"] if ok else {})
                 if all(r["variants"].get(v, {}).get(m) == r[m] for r in ok for m in ("IDF1", "HOTA"))][:1]
    if not names:
        return "the paper's ByteTrack"
    return "tracker variant " + ", ".join(f"`{n}`" + (" (the paper's ByteTrack)" if n == "paper" else "")
                                          for n in names)


def _zeros(variants: Mapping[str, Mapping[str, Any]]) -> str:
    """Why each variant that scored IDF1 0 did (its diagnosis), variants with the same reasons named together, e.g.
    "paper, max_ids: 3/3 seeds: no track started: no detection >= new_track_thresh 0.9 (...)"."""
    zero = [name for name, v in variants.items()
            if v.get("IDF1") == 0 or 0 in (v.get("IDF1_per_seed") or {}).values()]  # one seed's zero counts
    notes: dict[str, list[str]] = {}
    for name in zero:
        notes.setdefault(diagnosis_note(variants[name].get("diagnosis")) or "no figure explains it", []).append(name)
    return "; ".join(f"{', '.join(names)}: {note}" for note, names in notes.items())


def stage_times(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Wall seconds per stage over the jobs (what each stage cost when it actually ran, cached or not now)."""
    out: dict[str, float] = {}
    for r in rows:
        for name, st in (r.get("stages") or {}).items():
            kind = "train_models" if name.startswith("train_") else name
            out[kind] = out.get(kind, 0.0) + (0.0 if st["cached"] else st["wall_s"])
    return out


def markdown(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    return tabulate(lines, headers=list(header), tablefmt="github", disable_numparse=True)


def write_results(root: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> dict[str, Path]:
    """``results.json`` (what the config decides), ``runs.json`` (where and how long each job ran), ``table2.md``,
    ``table2.csv`` and the figures in ``root``."""
    root = Path(root)
    results = [{k: r.get(k) for k in RESULT_KEYS}
               | {"stage_keys": {n: st["key"] for n, st in (r.get("stages") or {}).items() if "key" in st}}
               | {k: v for k, v in r.items() if k not in RESULT_KEYS and k not in RUN_KEYS}
               for r in rows]
    header, lines = table2(rows)
    v_header, v_lines = variants_table(rows)
    text = (f"# Table 2: tracking with labels from each method (IDF1 / HOTA, {headline_variant(rows)})\n\n"
            f"{markdown(header, lines)}\n\n## Tracker variants\n\n{markdown(v_header, v_lines)}\n")
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *lines])
    out = {"results": root / "results.json", "runs": root / "runs.json", "table": root / "table2.md",
           "csv": root / "table2.csv"}
    ok = [r for r in rows if r["status"] == "ok"]
    series: dict[str, list[tuple[float, float]]] = {}
    for r in ok:
        if r.get("prompt_interval"):
            series.setdefault(f"{r['method']} ({r['dataset']})", []).append((r["prompt_interval"], r["IDF1"]))
    # jobs with a prompt interval that did not run are named on the figure, so its gaps explain themselves
    notes = sorted({f"{r['method']} ({r['dataset']}, every {r['prompt_interval']}): {r['status']}, {r['reason']}"
                    for r in rows if r.get("prompt_interval") and r["status"] != "ok"})
    # one unit (utils.io.atomic_files): a failure or a kill leaves the previous tables and figures, never a mix
    with atomic_files(root, "results") as tmp:
        (tmp / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        (tmp / "runs.json").write_text(json.dumps([{"method": r["method"], "dataset": r["dataset"]}
                                                   | {k: r.get(k) for k in RUN_KEYS} for r in rows], indent=2) + "\n",
                                       encoding="utf-8")
        (tmp / "table2.md").write_text(text, encoding="utf-8")
        (tmp / "table2.csv").write_text(buf.getvalue(), encoding="utf-8")
        if ok:
            bar_chart({f"{r['method']}\n{r['dataset']}": r for r in ok}, tmp / "idf1_hota.png",
                      title="IDF1 / HOTA of the tracker trained on each method's labels"
                            + (" (mean ± sd over detector seeds)" if any(r.get("IDF1_sd") is not None for r in ok)
                               else ""))
            out["bars"] = root / "idf1_hota.png"
        if series or notes:
            line_chart(series, tmp / "fig3a_idf1_vs_prompt_interval.png", xlabel="prompt interval (frames)",
                       ylabel="IDF1 (%)", title="IDF1 against prompt interval (paper Fig. 3a)", notes=notes)
            out["fig3a"] = root / "fig3a_idf1_vs_prompt_interval.png"
    return out
