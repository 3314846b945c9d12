"""A TrackEval dataset over in-memory MOT tables: one class, box IoU, no pedestrian-specific preprocessing.

TrackEval's ``MotChallenge2DBox`` reads files from a fixed folder layout and, for MOT16/17/20, keeps only
the pedestrian class and removes predictions matched to distractor classes. Animal data has neither, so
this class feeds TrackEval's metrics (HOTA, CLEAR, Identity) directly from ``MotTable``s with these rules:

* ground truth: every row whose conf/flag column is non-zero counts; flag-0 rows are dropped (after the
  raw-data id check, exactly where ``MotChallenge2DBox`` drops its ``zero_marked`` rows). 6- to 8-column
  files have no flag column and all their rows count. The class column is ignored.
* predictions: every row counts (no distractor matching, no class check, no score threshold).
* similarity: box IoU from ``_BaseDataset._calculate_box_ious`` (boxes are left, top, width, height).

This is what ``MotChallenge2DBox`` does for ``BENCHMARK='MOT15'`` (where preprocessing is skipped), with
two deliberate differences: a fractional flag (e.g. 0.5) counts here, while TrackEval truncates it to
int (0) and drops the row; and ids of any sign are relabelled (TrackEval's relabelling indexes an array by
id and silently misbehaves for negative ids).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from trackeval import _timing
from trackeval.datasets._base_dataset import _BaseDataset
from trackeval.utils import TrackEvalException

from samqa_framework.data.mot import MotTable

CLASS_NAME = "animal"


def _frame_bounds(table: MotTable, num_timesteps: int) -> np.ndarray:
    """Row index bounds of frames 1..num_timesteps in a (frame-sorted) table: rows of frame t+1 are
    ``bounds[t]:bounds[t + 1]``."""
    return np.searchsorted(table.frame, np.arange(1, num_timesteps + 2), side="left")


def _relabel(ids_per_t: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Map ids to 0..K-1 (sorted order), like TrackEval's ``gt_id_map``/``tracker_id_map``."""
    nonempty = [ids for ids in ids_per_t if len(ids)]
    if not nonempty:
        return ids_per_t, 0
    unique = np.unique(np.concatenate(nonempty))
    return [np.searchsorted(unique, ids).astype(int) for ids in ids_per_t], len(unique)


class MotTablesDataset(_BaseDataset):
    """Ground truth and one tracker's predictions per sequence, held in memory.

    ``gt``, ``pred`` and ``seq_lengths`` share their keys (sequence names). ``seq_lengths[seq]`` is the
    number of timesteps; every row's frame must lie in ``1..seq_lengths[seq]``.
    """

    def __init__(self, gt: Mapping[str, MotTable], pred: Mapping[str, MotTable],
                 seq_lengths: Mapping[str, int], tracker_name: str = "tracker") -> None:
        super().__init__()
        if set(gt) != set(pred) or set(gt) != set(seq_lengths):
            raise ValueError(
                "gt, pred and seq_lengths must name the same sequences; "
                f"only in gt: {sorted(set(gt) - set(pred))}, only in pred: {sorted(set(pred) - set(gt))}, "
                f"without a length: {sorted(set(gt) - set(seq_lengths))}, "
                f"length without gt: {sorted(set(seq_lengths) - set(gt))}")
        if not gt:
            raise ValueError("no sequences to evaluate")
        for seq in gt:
            n = int(seq_lengths[seq])
            if n < 0:
                raise ValueError(f"sequence {seq}: length must be >= 0, got {n}")
            for kind, table in (("ground truth", gt[seq]), ("prediction", pred[seq])):
                if len(table) and (table.frame.min() < 1 or table.frame.max() > n):
                    raise ValueError(f"sequence {seq}: {kind} has frames {table.frame.min()}..{table.frame.max()}"
                                     f" outside 1..{n}")
        self.gt = dict(gt)
        self.pred = dict(pred)
        self.seq_lengths = {seq: int(n) for seq, n in seq_lengths.items()}
        self.tracker_list = [tracker_name]
        self.seq_list = sorted(gt)
        self.class_list = [CLASS_NAME]
        # The Evaluator always asks for an output folder; nothing is written when its OUTPUT_* and
        # PLOT_CURVES options are off.
        self.output_fol = ""
        self.output_sub_fol = ""
        self.should_classes_combine = False
        self.use_super_categories = False

    @staticmethod
    def get_default_dataset_config() -> dict:
        return {}

    def _load_raw_file(self, tracker: str, seq: str, is_gt: bool) -> dict:
        """Split one table into per-timestep arrays, with the keys ``MotChallenge2DBox`` produces."""
        table = self.gt[seq] if is_gt else self.pred[seq]
        num_timesteps = self.seq_lengths[seq]
        bounds = _frame_bounds(table, num_timesteps)
        prefix = "gt" if is_gt else "tracker"
        ids, classes, dets, extra = [], [], [], []
        for t in range(num_timesteps):
            rows = slice(bounds[t], bounds[t + 1])
            ids.append(table.track_id[rows].astype(int))
            classes.append(np.ones(len(ids[-1]), dtype=int))  # one class: the column is not used
            dets.append(np.array(table.box[rows], dtype=float).reshape(-1, 4))
            extra.append(np.array(table.conf[rows], dtype=float))
        raw = {f"{prefix}_ids": ids, f"{prefix}_classes": classes, f"{prefix}_dets": dets,
               "num_timesteps": num_timesteps, "seq": seq}
        if is_gt:
            raw["gt_extras"] = [{"flag": flag} for flag in extra]
            raw["gt_crowd_ignore_regions"] = [np.empty((0, 4)) for _ in range(num_timesteps)]
        else:
            raw["tracker_confidences"] = extra
        return raw

    @_timing.time
    def get_preprocessed_seq_data(self, raw_data: dict, cls: str) -> dict:
        """Drop flag-0 ground-truth rows, keep every prediction, relabel ids contiguously.

        Returns the dict TrackEval's metrics read: ``num_timesteps, num_gt_ids, num_tracker_ids,
        num_gt_dets, num_tracker_dets, gt_ids, tracker_ids, gt_dets, tracker_dets, tracker_confidences,
        similarity_scores, seq``.
        """
        if cls != CLASS_NAME:
            raise TrackEvalException(f"unknown class {cls!r}; this dataset has only {CLASS_NAME!r}")
        self._check_unique_ids(raw_data)
        num_timesteps = raw_data["num_timesteps"]
        data: dict = {key: [None] * num_timesteps for key in
                      ("gt_ids", "tracker_ids", "gt_dets", "tracker_dets", "tracker_confidences",
                       "similarity_scores")}
        for t in range(num_timesteps):
            keep = np.not_equal(raw_data["gt_extras"][t]["flag"], 0)
            data["gt_ids"][t] = raw_data["gt_ids"][t][keep]
            data["gt_dets"][t] = raw_data["gt_dets"][t][keep, :]
            data["similarity_scores"][t] = raw_data["similarity_scores"][t][keep]
            data["tracker_ids"][t] = raw_data["tracker_ids"][t]
            data["tracker_dets"][t] = raw_data["tracker_dets"][t]
            data["tracker_confidences"][t] = raw_data["tracker_confidences"][t]
        data["num_gt_dets"] = int(sum(len(ids) for ids in data["gt_ids"]))
        data["num_tracker_dets"] = int(sum(len(ids) for ids in data["tracker_ids"]))
        data["gt_ids"], data["num_gt_ids"] = _relabel(data["gt_ids"])
        data["tracker_ids"], data["num_tracker_ids"] = _relabel(data["tracker_ids"])
        data["num_timesteps"] = num_timesteps
        data["seq"] = raw_data["seq"]
        self._check_unique_ids(data, after_preproc=True)
        return data

    def _calculate_similarities(self, gt_dets_t: np.ndarray, tracker_dets_t: np.ndarray) -> np.ndarray:
        return self._calculate_box_ious(gt_dets_t, tracker_dets_t, box_format="xywh")
