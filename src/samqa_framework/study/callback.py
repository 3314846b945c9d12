"""The study's report, made when the run or multirun ends: Table 2 from every job's row, figures, W&B summary.

A Hydra callback rather than code in the job: a multirun's jobs each see only themselves, and the table needs all
of them (also when some failed or were skipped). Printed last: the table, then the folder that holds it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from samqa_framework.study.report import collect_rows, markdown, stage_times, table2, variants_table, write_results

log = logging.getLogger(__name__)


class StudyReport(Callback):
    def __init__(self, summary_run: bool = True, fail_on_error: bool = True) -> None:
        """``summary_run``: one more logger run (W&B: job type ``study-summary``) that holds the whole table.
        ``fail_on_error``: exit with status 1 after the report when a job failed (skipped jobs do not count)."""
        self.summary_run = summary_run
        self.fail_on_error = fail_on_error

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.report(Path(config.hydra.runtime.output_dir), config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.report(Path(str(config.hydra.sweep.dir)), config)

    def report(self, root: Path, config: DictConfig) -> None:
        rows = collect_rows(root)
        if not rows:
            log.warning("no study rows under %s", root)
            return
        files = write_results(root, rows)
        if self.summary_run and config.get("logger"):
            log_summary_run(config, root, rows, files)
        header, lines = table2(rows)
        v_header, v_lines = variants_table(rows)
        times = stage_times(rows)
        print("\nTable 2: IDF1 / HOTA of ByteTrack (paper parameters) on YOLOv8 trained on each method's labels\n")
        print(markdown(header, lines))
        if v_lines:
            print("\nTracker variants (same detections):\n")
            print(markdown(v_header, v_lines))
        if times:
            total = sum(times.values())
            print("\nStage wall time (this run; cached stages count 0): "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + f"; total {total:.0f} s")
        print(f"\nresults: {root}")
        if self.fail_on_error and any(r["status"] == "failed" for r in rows):
            sys.exit(1)


def log_summary_run(config: DictConfig, root: Path, rows: list[dict[str, Any]], files: dict[str, Path]) -> None:
    """One more logger run for the whole study: Table 2 and the variants as tables, the charts as images."""
    import cv2

    from samqa_framework.utils.loggers import log_images, log_table, summary_loggers

    with summary_loggers(config, root, "study-summary") as loggers:
        header, lines = table2(rows)
        log_table(loggers, "table2", header, lines)
        v_header, v_lines = variants_table(rows)
        if v_lines:
            log_table(loggers, "tracker_variants", v_header, v_lines)
        for key in ("bars", "fig3a"):
            if key in files:
                log_images(loggers, key, [cv2.cvtColor(cv2.imread(str(files[key])), cv2.COLOR_BGR2RGB)])
