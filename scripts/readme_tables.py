"""Write a study's tables into README.md from its results.json: no hand-copied number.

    python scripts/readme_tables.py --results outputs/study/multirun/<run>/results.json --block table2
    python scripts/readme_tables.py --results <experiment=quick_all run>/results.json --block table2_quick_all
    python scripts/readme_tables.py --results <qa_ablation run>/results.json --block ablation
    python scripts/readme_tables.py --results <qa_pareto sweep>/pareto.json --block qa_pareto_rats
    python scripts/readme_tables.py --results <folder of samqa-annotate runs> --block qa_check
    python scripts/readme_tables.py --results docs/bench_review.json --block bench_review
    python scripts/readme_tables.py --results docs/bench_annotate.json --block bench_annotate
    python scripts/readme_tables.py --results <experiment=sleap_clip_samqa run>/results.json --block worked_example

A ``table2`` block (or ``table2_<name>``, e.g. the quick_all run's) is Table 2 and the tracker variants; where the
run's ``runs.json`` lies beside ``results.json``, the minutes its stages took from an empty cache (each stage once,
with the time of the run that made it) come with them, and both files are in the digest.

A ``qa_check`` block is one line per ``samqa-annotate`` run folder under ``--results`` (sorted by name): the QA
settings it ran with (its ``.hydra/config.yaml``) and its ``label_quality.json`` figures.

A ``bench_review`` block is the review-page latency of ``scripts/bench_review.py --out FILE.json``: submit -> next
question with ``prompts=web`` and ``prompts=queue`` side by side, the web path's split and the machine's load.

A ``bench_annotate`` block is ``scripts/bench_annotate.py --out FILE.json``: each annotation path's frames/s beside
today's inline loop on the same frames, box IoU and its difference, whether the labels are byte-identical, peak RSS
and its growth with the video's length, and the machine's load.

A ``worked_example`` block is the worked example on the real clip (``samqa-study -m experiment=sleap_clip_samqa``):
each row's IDF1 / HOTA beside its labels' quality against the human ones, the issue's targets met or missed (SAM-QA
within 5 IDF1 of the manual labels, at most 5 interventions per 100 frames, the whole run in 30 minutes) and the
minutes each stage took (``runs.json`` beside ``results.json``; both files are in the digest), then every tracker
variant on the same detections. ``worked_example_seeds``: the same tables for a run with several detector seeds
(``study.detector_seeds``; mean ± sd), without the minutes (its stages partly came from another run's cache).

A ``qa_pareto_<data set>`` block is the Pareto front of a ``hparams_search=qa_pareto`` sweep (its ``pareto.json``);
the sweep's ``pareto.png`` is copied beside the README as ``docs/<block>.png`` and shown under the table.

README.md holds each block between ``<!-- <block>:begin -->`` and ``<!-- <block>:end -->``; the text between is
replaced by the tables (Table 2 and the tracker variants, or the QA ablation) and a line naming the results file
and its SHA-256, so a reader can check which run a table shows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from samqa_framework.study.report import headline_variant, markdown, table2, variants_table
from samqa_framework.utils.io import atomic_open, atomic_write_text
from samqa_framework.utils.sweep_report import markdown_front

README = Path(__file__).resolve().parents[1] / "README.md"


def _mean_quality(row: Mapping[str, Any], key: str) -> float | None:
    values = [q[key] for q in (row.get("label_quality") or {}).values() if q and q.get(key) is not None]
    return sum(values) / len(values) if values else None


def _cell(v: float | None, sd: float | None = None, digits: int = 1) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def ablation_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per (QA config, data set): label box IoU, interventions per 100 frames, IDF1 / HOTA."""
    header = ["method", "dataset", "box IoU", "interventions / 100 frames", "IDF1", "HOTA", "notes"]
    lines = []
    for r in rows:
        if r["status"] != "ok":
            lines.append([r["method"], r["dataset"], "-", "-", r["status"], r["status"], r.get("reason", "")])
            continue
        why = (r.get("diagnosis") or {}).get("why") or ""
        lines.append([r["method"], r["dataset"], _cell(_mean_quality(r, "mean_box_iou"), digits=3),
                      _cell(r.get("interventions_per_100_frames")), _cell(r["IDF1"], r.get("IDF1_sd")),
                      _cell(r["HOTA"], r.get("HOTA_sd")), why])
    return markdown(header, lines)


def pareto_block(block: str, report: Mapping[str, Any], sweep_dir: Path, readme: Path) -> str:
    """The front (one row per distinct setting) and the sweep's plot, copied to ``docs/<block>.png``."""
    trials = [t for t in report["trials"] if t.get("values")]
    text = (f"{markdown_front(report['objectives'], report['pareto_front'])}\n\n"
            f"{len(report['pareto_front'])} settings on the front of {len(trials)} finished trials "
            f"({', '.join(f'{o} {d}' for o, d in zip(report['objectives'], report['directions'], strict=True))}).")
    png = sweep_dir / "pareto.png"
    if png.is_file():
        rel = Path("docs") / f"{block}.png"
        with atomic_open(readme.parent / rel, "wb") as fh:
            fh.write(png.read_bytes())
        text += f"\n\n![{block}]({rel.as_posix()})"
    return text


QA_KEYS = ("overlap_thresh", "size_ratio", "box_margin", "refine_passes", "recheck_missing")
QUALITY_KEYS = ("frames", "mean_box_iou", "id_switches", "recall", "interventions_per_100_frames")


def qa_check_block(folder: Path) -> tuple[str, bytes]:
    """The runs' settings and label quality as one table, and the bytes it was made from (for the digest)."""
    import yaml  # only this block reads Hydra's saved configs

    header = ["run", "data", *(f"qa.{k}" for k in QA_KEYS), *QUALITY_KEYS]
    lines, source = [], b""
    for cfg_file in sorted(folder.glob("*/.hydra/config.yaml")):
        run = cfg_file.parents[1]
        raw = cfg_file.read_bytes()
        cfg = yaml.safe_load(raw)
        for q_file in sorted(run.glob("labels/*/label_quality.json")):
            q_raw = q_file.read_bytes()
            source += raw + q_raw
            q = json.loads(q_raw)
            lines.append([run.name, cfg["data"]["name"], *(cfg["qa"][k] for k in QA_KEYS),
                          q["frames"], f"{q['mean_box_iou']:.3f}", q["id_switches"], f"{q['recall']:.3f}",
                          f"{q['interventions_per_100_frames']:.1f}"])
    if not lines:
        raise SystemExit(f"{folder}: no <run>/.hydra/config.yaml with labels/<sequence>/label_quality.json")
    return markdown(header, lines), source


def bench_review_block(report: Mapping[str, Any]) -> str:
    """Both paths' waits (submit -> next question) and their ratio, then the web path's split and what ran where."""
    web, queue = report["web"], report["queue"]
    w, q = web["summary"]["total_s"], queue["summary"]["wait_s"]
    header = ["path", "median s", "p90 s", "questions", "ratio (queue / web, median)"]
    by = {"browser": "headless Chromium", "http": "the HTTP oracle"}[web["client"]]
    lines = [[f"`prompts=web` (the page served by the annotating process; answers from {by})",
              f"{w['median']:.3f}", f"{w['p90']:.3f}", len(web["per_question"]), "1"],
             ["`prompts=queue` (`samqa-annotate` run again after each answers.json)", f"{q['median']:.3f}",
              f"{q['p90']:.3f}", len(queue["per_question"]), f"{report['ratio_queue_to_web']['median']:.1f}"]]
    c, p = web["summary"]["compute_s"], web["summary"]["page_http_s"]
    load = report["load_average"]
    checkpoint = Path(report["checkpoint"]).name if report.get("checkpoint") else "random weights"
    extra = " ".join(f"`{o}`" for o in report.get("extra_overrides") or []) or "none"
    verdict = "meets" if w["median"] < report["target_s"] else "misses"
    return (f"{markdown(header, lines)}\n\n"
            f"Web path, median: SAM-QA's compute between the questions {c['median']:.3f} s, page + HTTP "
            f"{p['median']:.3f} s; {verdict} the {report['target_s']} s target. {report['data']}, {report['frames']} "
            f"frames, image size {report['image_size']}, {checkpoint}, overrides {extra}; "
            f"load average {load['start'][0]:.2f} -> {load['end'][0]:.2f} on {report['cpus']} CPUs.")


ANNOTATE_PATHS = {"inline": "inline (`read_ahead=0 encode_ahead=false`: today's loop)",
                  "overlap": "overlap (`read_ahead=4 encode_ahead=true`)",
                  "overlap_ort": "overlap + `annotator.predictor.runtime=onnxruntime`",
                  "overlap_1t": "overlap, the encode-ahead worker on 1 thread (`annotator.predictor.ahead_threads=1`)",
                  "read_ahead": "`read_ahead=4 encode_ahead=false` (decoding ahead only, the default)",
                  "read_ahead_ort": "the default + `annotator.predictor.runtime=onnxruntime` (encoder and decoder)",
                  "read_ahead_int8": "the default + `annotator.predictor.runtime=onnxruntime_int8` (decoder float32)",
                  "read_ahead_int8_enc": "the default + `runtime=onnxruntime_int8 runtime_decoder=false` (encoder "
                                         "only)",
                  "read_ahead_ov": "the default + `annotator.predictor.runtime=openvino` (encoder and decoder float32)",
                  "read_ahead_ov_bf16": "the default + `annotator.predictor.runtime=openvino_bf16` (decoder float32)",
                  "read_ahead_ov_bf16_enc": "the default + `runtime=openvino_bf16 runtime_decoder=false` (encoder "
                                            "only)"}
PASSIVE = "+passive"


def _annotate_path(path: str) -> str:
    name = ANNOTATE_PATHS.get(path.removesuffix(PASSIVE), path.removesuffix(PASSIVE))
    return f"{name}, `OMP_WAIT_POLICY=PASSIVE`" if path.endswith(PASSIVE) else name


def bench_annotate_block(report: Mapping[str, Any]) -> str:
    """One line per (path, length), each beside the baseline run on the same frames (``+passive`` paths beside
    ``inline+passive``), then memory growth, the issue's targets met or missed, and what ran where."""
    comparisons = {(c["encoder"], c["path"], c["frames"], c["baseline"]): c for c in report["comparisons"]}
    header = ["path", "frames", "frames/s", "speed-up (same frames)", "box IoU", "box IoU diff", "labels identical",
              "peak RSS MB", "cpu / wall", "load (1 min)"]
    lines = []
    for r in report["rows"]:
        own = "inline" + (PASSIVE if r["path"].endswith(PASSIVE) else "")
        c = comparisons.get((r["encoder"], r["path"], r["frames"], own)) or comparisons.get(
            (r["encoder"], r["path"], r["frames"], "inline"))
        speed = f"{c['speedup']:.2f}x vs {c['baseline']}" if c else "-"
        diff = f"{c['box_iou_diff']:+.4f}" if c and c["box_iou_diff"] is not None else "-"
        same = ("yes" if c["labels_identical"] else "no") if c else "-"
        lines.append([_annotate_path(r["path"]) + ("" if len(report["encoders"]) == 1 else f" [{r['encoder']}]"),
                      f"{r['frames']:,}", f"{r['fps']:.2f}", speed, _cell(r["mean_box_iou"], digits=4), diff, same,
                      f"{r['peak_rss_mb']:,.0f}", f"{r['cpu_per_wall']:.2f}", f"{r['load_average']['start'][0]:.2f}"])
    growth = "; ".join(f"{_annotate_path(g['path'])} {g['long']:,} / {g['short']:,} frames {g['ratio']:.3f}"
                       for g in report["rss_growth"]) or "not measured (one length per path)"
    # the target: the fastest path against today's loop whose labels stay within --max-iou-diff of it
    max_diff = report.get("max_iou_diff", 0.01)

    def best(baseline: str) -> Mapping[str, Any] | None:
        ok = [c for c in report["comparisons"] if c["baseline"] == baseline and abs(c["box_iou_diff"] or 0) <= max_diff]
        return max(ok, key=lambda c: c["speedup"]) if ok else None

    targets = ""
    if plain := best("inline"):
        passive = best("inline" + PASSIVE)  # spinning OpenMP threads under load make the plain ratio the load's
        decider = passive or plain
        verdict = "meets" if decider["speedup"] >= 2 else "misses"
        targets = (f" The fastest path against today's loop with box IoU within {max_diff:g} of it: "
                   f"{_annotate_path(plain['path'])}, {plain['speedup']:.2f}x (box IoU {plain['box_iou_diff']:+.4f})")
        targets += (f". With OpenMP's waiting threads asleep in both (`OMP_WAIT_POLICY=PASSIVE`, so that spinning "
                    f"under load does not decide the ratio): {_annotate_path(passive['path'])}, "
                    f"{passive['speedup']:.2f}x ({verdict} the 2x target)." if passive
                    else f" ({verdict} the 2x target).")
    load = report["load_average"]
    checkpoint = Path(report["checkpoint"]).name if report.get("checkpoint") else "random weights"
    notes = f" {report['notes'].rstrip('.')}." if report.get("notes") else ""
    return (f"{markdown(header, lines)}\n\n"
            f"Peak RSS, longest / shortest run (limit {report['rss_limit']}): {growth}.{targets} "
            f"{report['data']}, image size {report['image_size']}, {checkpoint}; load average "
            f"{load['start'][0]:.2f} -> {load['end'][0]:.2f} on {report['cpus']} CPUs.{notes}")


def _mask_iou(check: Mapping[str, Any] | None) -> str:
    if not check or check.get("mean") is None:
        return "-"
    weights = "trained" if check.get("checkpoint") else "random"
    return f"{check['mean']:.4f} (min {check['min']:.4f}, {check['masks']} masks, {weights} weights)"


def bench_encoders_block(report: Mapping[str, Any], targets: Mapping[int, float] | None = None) -> str:
    """Each size's models beside ViT-B and eager from one ``bench_encoders.py`` run; a busy-CPU row is flagged and the
    issue's speed-up targets (x ViT-B, by size) are met or missed by the best student row."""
    targets = {1024: 15.0, 256: 10.0} if targets is None else targets
    header = ["size", "model", "median ms", "vs ViT-B", "vs eager", "max abs diff vs eager", "mask IoU vs eager",
              "cpu / wall", "load before", "busy CPU"]
    lines, verdicts = [], []
    for size, models in sorted(report.items(), key=lambda kv: -int(kv[0])):
        for name, r in models.items():
            lines.append([size, f"{r['model']} ({'teacher' if name == 'teacher' else r.get('runtime', 'eager')})",
                          f"{r['median_ms']:.1f}", f"{r.get('speedup_vs_teacher', 1.0):.1f}x",
                          f"{r['speedup_vs_eager']:.2f}x" if r.get("speedup_vs_eager") else "-",
                          f"{r['max_abs_diff_vs_eager']:.1e}" if r.get("max_abs_diff_vs_eager") is not None else "-",
                          _mask_iou(r.get("mask_iou_vs_eager")),
                          f"{r['cpu_per_wall']:.2f}", f"{r['loadavg_1m_before']:.2f}",
                          "yes" if r.get("contended") else "no"])
        best = max((r.get("speedup_vs_teacher", 0.0) for n, r in models.items() if n != "teacher"), default=0.0)
        if int(size) in targets:
            goal = targets[int(size)]
            verdicts.append(f"{size} px {best:.1f}x ({'meets' if best >= goal else 'misses'} >= {goal:g}x)")
    return f"{markdown(header, lines)}\n\nBest student against ViT-B: {'; '.join(verdicts)}."


# The worked example's targets (issue 14, item 5): IDF1 points below the manual row, interventions per 100 frames,
# minutes of the whole run (stages that ran, summed over the jobs).
WORKED_TARGETS = {"idf1_gap": 5.0, "interventions": 5.0, "minutes": 30.0}
STAGE_NAMES = {"train_models": "model training", "annotate": "annotation", "export": "export", "detector": "YOLOv8n",
               "detect": "detection", "track": "tracking + TrackEval"}


def stage_minutes(runs: Sequence[Mapping[str, Any]]) -> tuple[float, str]:
    """The whole run's minutes from an empty cache and a sentence splitting them by kind of stage (``runs``: the
    run's ``runs.json``)."""
    times = _stage_seconds(runs)
    order = {k: n for n, k in enumerate(STAGE_NAMES)}  # the pipeline's order, whichever job ran a stage first
    split = ", ".join(f"{STAGE_NAMES.get(k, k)} {v / 60:.1f}" for k, v in sorted(
        times.items(), key=lambda kv: order.get(kv[0], len(order))) if v >= 0.05 * 60)
    reused = sum(st.get("cached", False) for r in runs for st in (r.get("stages") or {}).values())
    note = (f"; {reused} stage(s) of this run came from the cache, each counted with the time of the run that made it"
            if reused else "")
    total = sum(times.values()) / 60
    return total, f"Minutes per stage (summed over the jobs, each stage once{note}): {split}"


def machine_note(runs: Sequence[Mapping[str, Any]]) -> str:
    """" On <cpu> (<instruction set>, <n> torch threads)." from the run's ``runs.json`` (rows before it recorded the
    machine: nothing). The same config repeats its table on one kind of CPU, not across kinds."""
    kinds = {(m["cpu"], m["cpu_capability"], m["torch_threads"]) for r in runs if (m := r.get("machine"))}
    return "".join(f" On {cpu} ({isa}, {threads} torch threads)." for cpu, isa, threads in sorted(kinds))


def _stage_seconds(runs: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Wall seconds per kind of stage, each stage (its cache key) once, with the time of the run that made it: what
    the whole run costs from an empty cache, whether or not this run read some stages from the cache."""
    seen: set[tuple[str, str]] = set()
    out: dict[str, float] = {}
    for r in runs:
        for name, st in (r.get("stages") or {}).items():
            kind = "train_models" if name.startswith("train_") else name.split("[")[0]
            key = (name, str(st.get("key", f"{r.get('method')}:{name}")))
            if key not in seen:
                seen.add(key)
                out[kind] = out.get(kind, 0.0) + float(st["wall_s"])
    return out


def worked_example_block(rows: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]],
                         targets: Mapping[str, float] = WORKED_TARGETS, timed: bool = True) -> str:
    """The manual and SAM-QA rows of the real clip: tracking, label quality against the human labels, the targets,
    each stage's minutes (``runs``: the run's ``runs.json``; not with ``timed=False``, e.g. a run that reused the
    stages of another and added detector seeds) and every tracker variant on the same detections."""
    header = ["method", "IDF1", "HOTA", "box IoU vs human labels", "recall", "ID switches",
              "interventions / 100 frames", "labelled frames"]
    lines, by = [], {}
    for r in rows:
        by[r.get("annotator")] = r
        if r["status"] != "ok":
            lines.append([r["method"], r["status"], r["status"], "-", "-", "-", "-", r.get("reason", "")])
            continue
        quality = list((r.get("label_quality") or {}).values())
        switches = sum(q.get("id_switches", 0) for q in quality) if quality else None
        frames = sum(q.get("frames", 0) for q in quality) if quality else None
        lines.append([r["method"], _cell(r["IDF1"], r.get("IDF1_sd")), _cell(r["HOTA"], r.get("HOTA_sd")),
                      _cell(_mean_quality(r, "mean_box_iou"), digits=3), _cell(_mean_quality(r, "recall"), digits=3),
                      "-" if switches is None else str(switches), _cell(r.get("interventions_per_100_frames")),
                      "-" if frames is None else f"{frames:,}"])
    verdicts = []
    manual, samqa = by.get("manual"), by.get("samqa")
    if manual and samqa and manual["status"] == samqa["status"] == "ok":
        gap = manual["IDF1"] - samqa["IDF1"]
        ok = gap <= targets["idf1_gap"]
        verdicts.append(f"SAM-QA's tracker {abs(gap):.1f} IDF1 {'below' if gap >= 0 else 'above'} the manual "
                        f"labels' ({'meets' if ok else 'misses'} within {targets['idf1_gap']:g})")
    if samqa and samqa.get("interventions_per_100_frames") is not None:
        ipf = samqa["interventions_per_100_frames"]
        ok = ipf <= targets["interventions"]
        verdicts.append(f"{ipf:.1f} interventions per 100 frames ({'meets' if ok else 'misses'} at most "
                        f"{targets['interventions']:g})")
    v_header, v_lines = variants_table(rows)
    variants = f"\n\nTracker variants (same detections):\n\n{markdown(v_header, v_lines)}" if v_lines else ""
    seeds = sorted({s for r in rows for s in (r.get("seeds") or [])})
    if not timed:
        over = f" (mean ± sd over detector seeds {', '.join(map(str, seeds))})" if len(seeds) > 1 else ""
        return f"{markdown(header, lines)}\n\nTargets{over}: {'; '.join(verdicts)}.{variants}"
    total, minutes = stage_minutes(runs)
    verdicts.append(f"the stages took {total:.1f} min in all ({'meets' if total <= targets['minutes'] else 'misses'} "
                    f"{targets['minutes']:g} min)")
    student = ((samqa or {}).get("models") or {}).get("sam_finetune") or {}
    fit = f" The student's box fit on every 50th evaluation frame (val/iou): {student['val/iou']:.3f}." if (
        student.get("val/iou") is not None) else ""
    return f"{markdown(header, lines)}\n\nTargets: {'; '.join(verdicts)}. {minutes}.{fit}{variants}"


def render(block: str, rows: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]] | None = None) -> str:
    """``table2`` or ``table2_<name>`` (Table 2 and the tracker variants; with ``runs``, the run's minutes from an
    empty cache) or ``ablation``."""
    if block == "table2" or block.startswith("table2_"):
        header, lines = table2(rows)
        v_header, v_lines = variants_table(rows)
        timed = ""
        if runs is not None:
            total, minutes = stage_minutes(runs)
            timed = f"\n\nThe run's stages took {total:.1f} min from an empty cache. {minutes}.{machine_note(runs)}"
        return (f"IDF1 / HOTA: {headline_variant(rows)}.\n\n{markdown(header, lines)}{timed}\n\n"
                f"Tracker variants (same detections):\n\n{markdown(v_header, v_lines)}")
    if block == "ablation":
        return ablation_table(rows)
    raise SystemExit(f"unknown block {block!r} (table2 | table2_<name> | ablation)")


def _rows(path: Path, raw: bytes) -> list[Mapping[str, Any]]:
    """A results.json's rows, or an error naming the file."""
    try:
        rows = json.loads(raw)
    except ValueError as exc:
        raise SystemExit(f"{path}: not JSON ({exc})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "method" in r for r in rows):
        raise SystemExit(f"{path}: not a study's results.json (a list of rows with a 'method')")
    return rows


def replace_block(text: str, block: str, body: str, readme: Path) -> str:
    pattern = re.compile(rf"(<!-- {re.escape(block)}:begin -->\n).*?(<!-- {re.escape(block)}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme}: no <!-- {block}:begin --> ... <!-- {block}:end --> markers")
    return pattern.sub(lambda m: f"{m.group(1)}{body}\n{m.group(2)}", text, count=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, type=Path, nargs="+",
                        help="a study's results.json, a sweep's pareto.json or (qa_check) a folder of annotate runs; "
                             "ablation: one or more results.json (e.g. one multirun per data set), rows in order")
    parser.add_argument("--block", required=True,
                        help="table2, table2_<name> (a results.json; runs.json beside it adds the minutes) | "
                             "ablation (one or more results.json) | qa_pareto_<data set> (a pareto.json) | qa_check | "
                             "bench_review (bench_review.py's --out) | bench_annotate (bench_annotate.py's --out) | "
                             "bench_encoders (bench_encoders.py's --out) | worked_example, worked_example_seeds (a "
                             "results.json, runs.json beside it; _seeds: without stage minutes)")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args()
    if len(args.results) > 1 and args.block != "ablation":
        parser.error(f"--block {args.block} reads one --results file ({len(args.results)} given)")
    sources = args.results
    args.results = sources[0]
    if args.block == "ablation":  # the rows of each file in turn; the digest covers every file
        raw = [f.read_bytes() for f in sources]
        data = b"".join(raw)
        rendered = render(args.block, [row for f, b in zip(sources, raw, strict=True) for row in _rows(f, b)])
    elif args.block == "qa_check":
        rendered, data = qa_check_block(args.results)
    else:
        data = args.results.read_bytes()
        if args.block == "bench_review":
            rendered = bench_review_block(json.loads(data))
        elif args.block == "bench_annotate":
            rendered = bench_annotate_block(json.loads(data))
        elif args.block == "bench_encoders":
            rendered = bench_encoders_block(json.loads(data))
        elif args.block in ("worked_example", "worked_example_seeds"):
            runs = (args.results.parent / "runs.json").read_bytes()
            rendered = worked_example_block(json.loads(data), json.loads(runs), timed=args.block == "worked_example")
            data += runs
        elif args.block.startswith("qa_pareto_"):
            rendered = pareto_block(args.block, json.loads(data), args.results.parent, args.readme)
        else:
            runs_file = args.results.parent / "runs.json"
            runs = None
            if args.block.startswith("table2") and runs_file.is_file():  # the run's minutes beside its table
                runs = runs_file.read_bytes()
                data += runs
            rendered = render(args.block, json.loads(args.results.read_bytes()), json.loads(runs) if runs else None)
    digest = hashlib.sha256(data).hexdigest()[:12]
    of = ", ".join(f"`{f.name}` of `{f.parent.name}`" for f in sources)
    body = (f"{rendered}\n\n<sub>Generated by `scripts/readme_tables.py --block {args.block}` from {of} "
            f"(sha256 {digest}).</sub>")
    text = args.readme.read_text(encoding="utf-8")
    atomic_write_text(args.readme, replace_block(text, args.block, body, args.readme))
    print(f"{args.readme}: block {args.block} from {args.results}")


if __name__ == "__main__":
    main()
