"""Run TrackEval (HOTA, CLEAR, Identity) on MOT tables or on MOTChallenge-layout folders.

Results are per sequence plus a ``"COMBINED"`` row (TrackEval's ``COMBINED_SEQ``: counts summed over
sequences, then the scores recomputed), in percent like the paper's tables. HOTA-family scores are the
mean over TrackEval's 19 localisation thresholds (alpha = 0.05 .. 0.95), as in TrackEval's summaries;
MOTA/MOTP/IDF1 use its default IoU threshold 0.5. Counts (IDSW, Frag, MT, ML, FP, FN) are ints.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import trackeval
from trackeval.utils import TrackEvalException

from samqa_framework.data.mot import MotTable, read_mot
from samqa_framework.data.sequence import DatasetManifest, SeqInfo
from samqa_framework.evaluate.trackeval_dataset import CLASS_NAME, MotTablesDataset
from samqa_framework.utils.errors import DataFormatError, SamqaError
from samqa_framework.utils.names import check_name

log = logging.getLogger(__name__)

COMBINED = "COMBINED"

#: Output key -> (TrackEval metric, field, kind). kind: "alpha" = mean over alphas x 100, "pct" = x 100,
#: "count" = int.
METRIC_FIELDS: dict[str, tuple[str, str, str]] = {
    "HOTA": ("HOTA", "HOTA", "alpha"),
    "DetA": ("HOTA", "DetA", "alpha"),
    "AssA": ("HOTA", "AssA", "alpha"),
    "DetRe": ("HOTA", "DetRe", "alpha"),
    "DetPr": ("HOTA", "DetPr", "alpha"),
    "AssRe": ("HOTA", "AssRe", "alpha"),
    "AssPr": ("HOTA", "AssPr", "alpha"),
    "LocA": ("HOTA", "LocA", "alpha"),
    "IDF1": ("Identity", "IDF1", "pct"),
    "IDP": ("Identity", "IDP", "pct"),
    "IDR": ("Identity", "IDR", "pct"),
    "MOTA": ("CLEAR", "MOTA", "pct"),
    "MOTP": ("CLEAR", "MOTP", "pct"),
    "IDSW": ("CLEAR", "IDSW", "count"),
    "Frag": ("CLEAR", "Frag", "count"),
    "MT": ("CLEAR", "MT", "count"),
    "ML": ("CLEAR", "ML", "count"),
    "FP": ("CLEAR", "CLR_FP", "count"),
    "FN": ("CLEAR", "CLR_FN", "count"),
}
METRIC_KEYS: tuple[str, ...] = tuple(METRIC_FIELDS)
COUNT_KEYS: frozenset[str] = frozenset(k for k, (_, _, kind) in METRIC_FIELDS.items() if kind == "count")

_EVAL_CONFIG = {
    "USE_PARALLEL": False,
    "BREAK_ON_ERROR": True,
    "RETURN_ON_ERROR": False,
    "LOG_ON_ERROR": None,  # TrackEval's default appends to a file inside site-packages
    "PRINT_RESULTS": False,
    "PRINT_ONLY_COMBINED": False,
    "PRINT_CONFIG": False,
    "TIME_PROGRESS": False,
    "DISPLAY_LESS_PROGRESS": True,
    "OUTPUT_SUMMARY": False,
    "OUTPUT_EMPTY_CLASSES": False,
    "OUTPUT_DETAILED": False,
    "PLOT_CURVES": False,
}


class EvaluationError(SamqaError, ValueError):
    """TrackEval rejected the data (e.g. an id twice in one frame of an in-memory table)."""


def summarize(metric_res: Mapping[str, Mapping[str, object]]) -> dict[str, float]:
    """One sequence's (or COMBINED_SEQ's) TrackEval result for one class -> our flat percent dict."""
    out: dict[str, float] = {}
    for key, (metric, field, kind) in METRIC_FIELDS.items():
        value = metric_res[metric][field]
        if kind == "alpha":
            out[key] = float(100.0 * np.mean(value))
        elif kind == "pct":
            out[key] = float(100.0 * value)
        else:
            out[key] = int(value)
    return out


def counts(table: MotTable) -> bool:
    """Whether a ground-truth table has a row that counts (a non-zero flag): one without any scores n/a."""
    return bool(len(table)) and bool((table.conf != 0).any())


def _metrics() -> list:
    quiet = {"PRINT_CONFIG": False, "THRESHOLD": 0.5}
    return [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(dict(quiet)), trackeval.metrics.Identity(dict(quiet))]


def evaluate_tables(gt: dict[str, MotTable], pred: dict[str, MotTable],
                    seq_lengths: dict[str, int]) -> dict[str, dict[str, float | None]]:
    """Evaluate predictions against ground truth with TrackEval, one class, box IoU.

    Returns ``{seq: {"HOTA": ..., "IDF1": ..., ...}, ..., "COMBINED": {...}}`` (sequences sorted,
    COMBINED last). See ``MotTablesDataset`` for which rows count. A sequence whose ground truth has no row that
    counts gets ``None`` (n/a) for every metric and is left out of COMBINED (all of them: COMBINED is n/a too).
    """
    if COMBINED in gt:
        raise ValueError(f"a sequence may not be named {COMBINED!r}")
    # a sequence without ground truth to find has no score (TrackEval would give HOTA 0): n/a, and left out of
    # COMBINED; load_dirs warns naming the file
    scored = [s for s in gt if counts(gt[s])]
    if not scored:
        return {**{s: dict.fromkeys(METRIC_KEYS) for s in sorted(gt)}, COMBINED: dict.fromkeys(METRIC_KEYS)}
    if len(scored) < len(gt):
        out = evaluate_tables({s: gt[s] for s in scored}, {s: pred[s] for s in scored if s in pred},
                              {s: seq_lengths[s] for s in scored})
        rows = {s: out[s] if s in out else dict.fromkeys(METRIC_KEYS) for s in sorted(gt)}
        return {**rows, COMBINED: out[COMBINED]}
    dataset = MotTablesDataset(gt, pred, seq_lengths)
    tracker = dataset.tracker_list[0]
    # TrackEval prints progress (and, on errors, tracebacks) unconditionally: keep the console clean and
    # re-raise its error as ours.
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            evaluator = trackeval.Evaluator(dict(_EVAL_CONFIG))
            output_res, _ = evaluator.evaluate([dataset], _metrics())
    except TrackEvalException as exc:
        raise EvaluationError(f"TrackEval: {exc}") from None
    res = output_res[dataset.get_name()][tracker]
    out = {seq: summarize(res[seq][CLASS_NAME]) for seq in dataset.seq_list}
    out[COMBINED] = summarize(res["COMBINED_SEQ"][CLASS_NAME])
    return out


def _seq_length(gt_root: Path, seq: str) -> int | None:
    ini = gt_root / seq / "seqinfo.ini"
    return SeqInfo.read(ini).seq_length if ini.is_file() else None


def default_sequences(gt_root: Path) -> list[str]:
    """The sequences to score when none are named: a data set's eval split (its ``dataset.yaml``; the training
    sequences have no tracks of their own), else every folder of ``gt_root`` holding ``gt/gt.txt``."""
    if (gt_root / DatasetManifest.FILE).is_file():
        manifest = DatasetManifest.read(gt_root)
        if not manifest.eval:
            raise DataFormatError(gt_root / DatasetManifest.FILE, "lists no eval sequences: name the ones to score "
                                  "(sequences=[...])")
        return list(manifest.eval)
    sequences = sorted(p.name for p in gt_root.iterdir() if (p / "gt" / "gt.txt").is_file())
    if not sequences:
        raise DataFormatError(gt_root, "no sequences: expected <seq>/gt/gt.txt folders")
    return sequences


def with_ground_truth(gt_root: Path, sequences: list[str]) -> list[str]:
    """``sequences`` less those without ground truth (an unlabelled import), each named in a warning; an error naming
    the files when none is left. A name that is not a folder of ``gt_root`` is an error (a typo)."""
    unknown = [s for s in sequences if not (gt_root / s).is_dir()]
    if unknown:
        raise DataFormatError(gt_root / unknown[0], f"sequence {unknown[0]} not found")
    missing = [s for s in sequences if not (gt_root / s / "gt" / "gt.txt").is_file()]
    for seq in missing:
        log.warning("not scored: sequence %s has no ground truth (%s missing)", seq, gt_root / seq / "gt" / "gt.txt")
    if len(missing) == len(sequences):
        raise DataFormatError(gt_root / missing[0] / "gt" / "gt.txt", f"evaluation needs ground truth, and none of "
                              f"the sequences {missing} has any (gt/gt.txt missing)")
    return [s for s in sequences if s not in missing]


def load_dirs(gt_dir: str | os.PathLike[str], pred_dir: str | os.PathLike[str],
              sequences: list[str] | None = None
              ) -> tuple[dict[str, MotTable], dict[str, MotTable], dict[str, int]]:
    """Read ``gt_dir/<seq>/gt/gt.txt`` and ``pred_dir/<seq>.txt`` for every sequence.

    Sequences are ``sequences`` if given (names, never paths: a ``ConfigError`` naming ``sequences``), else
    :func:`default_sequences` (a data set's eval split). Those without ground truth are left out with a warning
    (:func:`with_ground_truth`). A sequence's number of timesteps is ``seqLength`` of ``gt_dir/<seq>/seqinfo.ini``
    if that file exists (rows beyond it are errors), else the last frame in its gt or pred file.
    """
    gt_root, pred_root = Path(gt_dir), Path(pred_dir)
    if not gt_root.is_dir():
        raise DataFormatError(gt_root, "ground-truth folder not found")
    if not pred_root.is_dir():
        raise DataFormatError(pred_root, "prediction folder not found")
    if sequences is None:
        sequences = default_sequences(gt_root)
        for seq in sequences:  # names read from data: never joined to a folder unchecked
            check_name(seq, "sequence folder name", path=gt_root / seq)
    else:  # joined to both folders below: a path would read outside them
        sequences = [check_name(seq, "sequence name", key="sequences") for seq in sequences]
    sequences = with_ground_truth(gt_root, list(sequences))
    pred_files = sorted(p for p in pred_root.glob("*.txt") if p.is_file())
    for path in pred_files:
        if not (gt_root / path.stem).is_dir():
            raise DataFormatError(path, f"prediction for an unknown sequence: no ground truth "
                                  f"{gt_root / path.stem / 'gt' / 'gt.txt'}")
    gt: dict[str, MotTable] = {}
    pred: dict[str, MotTable] = {}
    lengths: dict[str, int] = {}
    for seq in sequences:
        gt_path = gt_root / seq / "gt" / "gt.txt"
        pred_path = pred_root / f"{seq}.txt"
        if not pred_path.is_file():
            raise DataFormatError(pred_path, f"prediction file for sequence {seq} not found")
        n = _seq_length(gt_root, seq)
        gt[seq] = read_mot(gt_path, num_frames=n)
        if not counts(gt[seq]):
            log.warning("%s: the ground truth of sequence %s is empty (no row with a non-zero flag): its metrics are "
                        "n/a, and it is left out of COMBINED", gt_path, seq)
        pred[seq] = read_mot(pred_path, num_frames=n)
        lengths[seq] = n if n is not None else max(gt[seq].num_frames, pred[seq].num_frames)
    return gt, pred, lengths


def evaluate_dirs(gt_dir: str | os.PathLike[str], pred_dir: str | os.PathLike[str],
                  sequences: list[str] | None = None) -> dict[str, dict[str, float]]:
    """``evaluate_tables`` on MOTChallenge-layout folders (see ``load_dirs``)."""
    return evaluate_tables(*load_dirs(gt_dir, pred_dir, sequences))
