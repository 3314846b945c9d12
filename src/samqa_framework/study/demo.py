"""The demo task (``samqa-demo``, ``api.demo``): synthetic data set -> ByteTrack on simulated detections ->
TrackEval table and chart. Above tracking and evaluation, as the study is."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from samqa_framework.data.mot import write_mot
from samqa_framework.evaluate.plots import bar_chart
from samqa_framework.evaluate.report import format_table, write_report
from samqa_framework.evaluate.trackeval_runner import COMBINED, evaluate_dirs
from samqa_framework.track.bytetrack import ByteTrack
from samqa_framework.track.simulated_detector import SimulatedDetector
from samqa_framework.utils.hydra import config_node, instantiate_node
from samqa_framework.utils.loggers import job_loggers, log_images, log_summary, log_table

log = logging.getLogger(__name__)


def demo(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Returns ``{detector: COMBINED metrics over the evaluation sequences}``."""
    dataset_dir = Path(cfg.paths.dataset_dir)
    with config_node(cfg, "data"):
        manifest = instantiate(cfg.data, _convert_="all").build(dataset_dir)
    out_dir = Path(cfg.paths.output_dir)
    tracker: ByteTrack = instantiate_node(cfg, "tracker")
    tracker.save_yaml(out_dir / "tracker.yaml")  # the settings used, loadable by ultralytics' model.track()
    combined: dict[str, dict[str, float]] = {}
    for name, params in cfg.detectors.items():
        detector = SimulatedDetector(**params, seed=cfg.seed)
        pred_dir = out_dir / "tracks" / name
        for seq in manifest.sequences(dataset_dir, "eval"):
            info = seq.info
            size = (info.width, info.height)
            tracks = tracker.track(detector.detections(seq.gt(), info.seq_length, size), size)
            write_mot(pred_dir / f"{seq.name}.txt", tracks, columns=10)
        metrics = evaluate_dirs(dataset_dir, pred_dir, sequences=manifest.eval)
        write_report(metrics, out_dir / "metrics" / name)
        combined[name] = metrics[COMBINED]
    table = format_table(combined, label="detector")
    (out_dir / "demo.md").write_text(f"# ByteTrack on simulated detectors, {manifest.name}\n\n{table}\n")
    chart = bar_chart(combined, out_dir / "demo_idf1_hota.png",
                      title=f"ByteTrack (paper parameters) on {manifest.name}: detector noise vs. metrics")
    with job_loggers(cfg) as loggers:
        cols = ["detector", "IDF1", "HOTA", "MOTA", "IDSW"]
        log_table(loggers, "demo", cols, [[k, *(m[c] for c in cols[1:])] for k, m in combined.items()])
        log_summary(loggers, {f"{k}/{c}": m[c] for k, m in combined.items() for c in ("IDF1", "HOTA")})
        log_images(loggers, "demo_chart", [chart_rgb(chart)])
    print(f"\nByteTrack with the paper's parameters on simulated detections, {manifest.name} "
          f"({', '.join(manifest.eval)}):\n")
    print(table)
    print(f"\nchart: {chart}\nresults: {out_dir}")
    return combined


def chart_rgb(path: Path):
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
