"""One study job: a method's labels for a data set, judged by the tracker they train (paper section 2, Table 2).

    models (cached)  ->  annotate  ->  export (YOLO)  ->  detector  ->  detect  ->  track + evaluate

Each arrow is a stage of ``study/cache.py``: run once per configuration, reused by every later job or re-run that
asks for the same thing (e.g. the U-Net trained once for ``watershed_unet`` and ``watershed_unet_manual``).
Stages talk through files in documented formats (MOT txt, COCO RLE, YOLO folders, ultralytics weights).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from tqdm.auto import tqdm

from samqa_framework.annotate.label_set import read_label_set
from samqa_framework.annotate.runner import annotate_sequence
from samqa_framework.data.identity import dataset_identity
from samqa_framework.data.mot import MotTable, read_mot, write_mot
from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.data.yolo_export import export_yolo, write_data_yaml
from samqa_framework.evaluate.report import write_report
from samqa_framework.evaluate.trackeval_runner import COMBINED, evaluate_dirs
from samqa_framework.study.cache import StageCache, StageResult
from samqa_framework.track.bytetrack import frames_of
from samqa_framework.training import train
from samqa_framework.utils.config import to_plain
from samqa_framework.utils.errors import ConfigError, check_number
from samqa_framework.utils.hydra import compose, config_node, instantiate_node

log = logging.getLogger(__name__)

CLASS_NAMES = ("animal",)
# Stands for a model stage's folder in its config until the cache gives the folder (paths are not in the key).
_STAGE_DIR = "<stage_dir>"


class Skipped(Exception):
    """The job cannot run here (a checkpoint or model folder is not configured); the row says which key to set."""


class StudyJob:
    """The stages of one (method, data set) job; ``run()`` returns its results row."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.cache = StageCache(cfg.study.cache_dir)
        self.out_dir = Path(cfg.paths.output_dir)
        self.stages: dict[str, StageResult] = {}
        self.progress = bool(cfg.get("progress", True))
        self.ignore = list(cfg.study.get("cache_ignore") or [])
        self.inputs: dict[str, str] = {}  # split -> the content identity of its files (set when the data is built)

    def keyed(self, node: Any, path: str, ignore: list[str] | None = None) -> Any:
        """``node`` (the job config's ``path``) as plain data for a cache key, without the keys that change how a
        stage reports or how fast it runs, not what it produces (``study.cache_ignore``)."""
        return _without(to_plain(node), path, self.ignore if ignore is None else ignore)

    # ---- stages --------------------------------------------------------------------------------------------
    def _stage(self, name: str, spec: Mapping[str, Any], fn: Callable[[Path], Mapping[str, Any]],
               tag: str = "") -> StageResult:
        """Run or read stage ``name``; ``tag`` tells apart runs of one stage in a job (``seed=1``)."""
        n = len(self.stages) + 1
        label = f"{name}[{tag}]" if tag else name
        log.info("[stage %d] %s", n, label)
        result = self.cache.run(name, spec, fn)
        self.stages[label] = result
        log.info("[stage %d] %s %s in %.1f s (%s)", n, label, "cached" if result.cached else "done",
                 result.wall_s, result.dir)
        return result

    def train_model(self, name: str) -> StageResult:
        """A model a method needs (``study.models.<name>``: samqa-train overrides), trained once and cached."""
        spec_cfg = self.cfg.study.models.get(name)
        if spec_cfg is None:
            raise ConfigError(f"study.models.{name}", "no such model spec (a method's `needs` names it)")
        # A model may start from another one (e.g. fine-tuning from the distilled student).
        parents = {key: self.train_model(parent) for parent, key in (spec_cfg.get("needs") or {}).items()}
        train_cfg = self.train_config(spec_cfg, {key: r.outputs["export"] for key, r in parents.items()})
        # the parent models stand in the key by their stage keys, not their folders (as in annotate)
        spec_train = self.train_config(spec_cfg, {key: f"<{r.name}:{r.key}>" for key, r in parents.items()})
        spec = {"model": name, "train": self.keyed(spec_train, "", list(self.cfg.study.train_cache_ignore)),
                "input": self.inputs["train"]}

        def fn(stage_dir: Path) -> dict[str, Any]:
            out = train(OmegaConf.merge(train_cfg, {"paths": {"output_dir": str(stage_dir)}}))
            return {"export": str(out["export"]), "metrics": out["metrics"]}

        return self._stage(f"train_{name}", spec, fn)

    def train_config(self, spec_cfg: DictConfig, parents: Mapping[str, str]) -> DictConfig:
        """The samqa-train config of a model spec: its overrides composed as samqa-train would, this job's data set
        and seed, the nodes it inherits (``inherit``), the exports of the models it starts from (``parents``: key ->
        path), and its output folder left to the stage (``paths.output_dir``)."""
        train_cfg = compose("train", [*spec_cfg.overrides, "logger=csv"], output_dir=self.out_dir)
        with open_dict(train_cfg):
            train_cfg.data = self.cfg.data
            train_cfg.seed = self.cfg.seed
            for node in spec_cfg.get("inherit") or []:
                train_cfg[node] = self.cfg[node]
            train_cfg.paths = OmegaConf.merge(self.cfg.paths, {"output_dir": _STAGE_DIR})
            train_cfg.export_path = "${paths.output_dir}/model.pt"
            for key, path in parents.items():
                OmegaConf.update(train_cfg, key, path, force_add=True)
        return train_cfg

    def annotator_config(self, trained: Mapping[str, str]) -> DictConfig:
        """The job's annotator node with the trained models' exports at the keys its method names (``trained``:
        key -> path, e.g. ``model.checkpoint``), in a copy: the job's own config stays as composed."""
        cfg = copy.deepcopy(self.cfg)
        for key, path in trained.items():
            OmegaConf.update(cfg, key, path, force_add=True)
        return cfg.annotator

    def annotate(self, trained: Mapping[str, StageResult], manifest: DatasetManifest,
                 dataset_dir: Path) -> StageResult:
        """``trained``: key -> the model stage whose export the annotator loads from that key."""
        cfg = self.cfg
        annotator_cfg = self.annotator_config({key: r.outputs["export"] for key, r in trained.items()})
        # a trained model stands in the key by its stage's key, not by its folder: a copied or moved cache still
        # matches, and two caches of one config give the same keys
        spec = {"annotator": self.keyed(self.annotator_config({k: f"<{r.name}:{r.key}>" for k, r in trained.items()}),
                                        "annotator"),
                "data": to_plain(cfg.data), "max_frames": cfg.get("max_frames"), "input": self.inputs["train"]}

        def fn(stage_dir: Path) -> dict[str, Any]:
            with config_node(annotator_cfg, ""):  # errors name annotator.<key>
                annotator = instantiate(annotator_cfg, _convert_="all")
            sequences = {}
            for seq in manifest.sequences(dataset_dir, "train"):
                with config_node(annotator_cfg, ""):  # what the method checks when it starts on a sequence
                    res = annotate_sequence(annotator, seq, stage_dir / seq.name, fingerprint=spec,
                                            max_frames=cfg.get("max_frames"), progress=self.progress,
                                            num_animals=manifest.num_animals, read_ahead=cfg.get("read_ahead", 0),
                                            encode_ahead=cfg.get("encode_ahead", False))
                sequences[seq.name] = {"labels_dir": str(res.out_dir), "frames": res.frames, "counts": res.counts,
                                       "quality": res.quality}
            frames = sum(s["frames"] for s in sequences.values())
            interventions = sum(s["counts"]["interventions"] for s in sequences.values())
            return {"sequences": sequences, "frames": frames, "interventions": interventions,
                    "interventions_per_100_frames": 100.0 * interventions / max(frames, 1)}

        return self._stage("annotate", spec, fn)

    def export(self, annotation: StageResult, manifest: DatasetManifest, dataset_dir: Path) -> StageResult:
        every = int(self.cfg.study.val_every)
        spec = {"annotate": annotation.key, "val_every": every, "classes": list(CLASS_NAMES),
                "max_frames": self.cfg.get("max_frames")}

        def fn(stage_dir: Path) -> dict[str, Any]:
            sets = []
            for seq in manifest.sequences(dataset_dir, "train"):
                labels_dir = annotation.outputs["sequences"][seq.name]["labels_dir"]
                sets.append(read_label_set(labels_dir, seq, max_frames=self.cfg.get("max_frames")))
            # val: every `val_every`-th labelled frame of the label set itself, never the evaluation ground truth
            # (a user has no ground truth either); ultralytics requires a val split and reports on it.
            for split, step in (("train", 1), ("val", every)):
                export_yolo(((s.sequence.name, s.sequence.frames(), s.boxes) for s in sets), stage_dir, split,
                            class_names=CLASS_NAMES, frames={s.sequence.name: s.labelled[::step] for s in sets},
                            min_flag=-math.inf)  # a label's conf column is the method's score, not a gt flag
            data_yaml = write_data_yaml(stage_dir, {"train": "train", "val": "val"}, CLASS_NAMES)
            # every box of a checked label set lies in its image, so each one is exported (the detector checks the
            # YOLO folders it trains on: they are not read back here)
            return {"data_yaml": str(data_yaml), "boxes": sum(len(s.boxes) for s in sets),
                    "images": sum(len(s.labelled) for s in sets)}

        return self._stage("export", spec, fn)

    def train_detector(self, export: StageResult, seed: int, tag: str = "") -> StageResult:
        """The detector trained on an export with one training seed (``detector.seed`` replaced by ``seed``)."""
        spec = {"export": export.key, "detector": {**self.keyed(self.cfg.detector, "detector"), "seed": seed}}

        def fn(stage_dir: Path) -> dict[str, Any]:
            detector = self.detector if seed == self.cfg.detector.seed else instantiate_node(
                self.cfg, "detector", _convert_="all", seed=seed)
            with config_node(self.cfg, "detector"):  # its architecture is looked up when training starts
                run = detector.train(Path(export.outputs["data_yaml"]), stage_dir / "yolo")
            return {"weights": str(run.weights), "results_csv": str(run.results_csv), "metrics": run.metrics,
                    "epochs": run.epochs}

        return self._stage("detector", spec, fn, tag)

    def detect(self, detector: StageResult, manifest: DatasetManifest, dataset_dir: Path,
               tag: str = "") -> StageResult:
        """Detections on the evaluation videos as MOT rows (id = rank within the frame, conf = score)."""
        predict = {k: v for k, v in self.keyed(self.cfg.detector, "detector").items() if k != "seed"}
        spec = {"detector": detector.key, "predict": predict, "eval": list(manifest.eval),
                "data": to_plain(self.cfg.data), "input": self.inputs["eval"]}

        def fn(stage_dir: Path) -> dict[str, Any]:
            counts = {}
            for seq in manifest.sequences(dataset_dir, "eval"):
                frames, ids, boxes, scores = [], [], [], []
                stream = self.detector.detect(Path(detector.outputs["weights"]), seq.frames())
                for frame, det in tqdm(stream, total=seq.info.seq_length, desc=f"detect {seq.name}", unit="frame",
                                       disable=not self.progress, dynamic_ncols=True):
                    for rank, (x1, y1, x2, y2, score, _cls) in enumerate(det, start=1):
                        frames.append(frame)
                        ids.append(rank)
                        boxes.append((x1, y1, x2 - x1, y2 - y1))
                        scores.append(score)
                table = (MotTable(np.array(frames), np.array(ids), np.array(boxes).reshape(-1, 4), np.array(scores))
                         if frames else MotTable.empty())
                write_mot(stage_dir / f"{seq.name}.txt", table, columns=10)
                counts[seq.name] = len(table)
            return {"dir": str(stage_dir), "detections": counts}

        return self._stage("detect", spec, fn, tag)

    def track(self, detections: StageResult, manifest: DatasetManifest, dataset_dir: Path,
              tag: str = "") -> StageResult:
        """Every tracker variant (``study.tracker_variants``) on the same detections, scored with TrackEval."""
        # "num_animals" stands for the data set's known count, from its manifest (imported sets count their tracks)
        variants = {name: {k: manifest.num_animals if val == "num_animals" else val
                           for k, val in (to_plain(v) or {}).items()}
                    for name, v in self.cfg.study.tracker_variants.items()}
        trackers = {}
        for name, changes in variants.items():
            with config_node(self.cfg, f"study.tracker_variants.{name}"):
                trackers[name] = type(self.tracker).from_config(**{**dataclasses.asdict(self.tracker), **changes})
        spec = {"detect": detections.key, "trackers": {n: dataclasses.asdict(t) for n, t in trackers.items()}}

        def fn(stage_dir: Path) -> dict[str, Any]:
            metrics = {}
            for name, tracker in trackers.items():
                pred_dir = stage_dir / name
                confs, started = [], 0
                for seq in manifest.sequences(dataset_dir, "eval"):
                    info = seq.info
                    dets = read_mot(Path(detections.outputs["dir"]) / f"{seq.name}.txt", num_frames=info.seq_length)
                    tracks = tracker.track(frames_of(dets, info.seq_length), (info.width, info.height))
                    write_mot(pred_dir / f"{seq.name}.txt", tracks, columns=10)
                    confs.append(dets.conf)
                    started += len(np.unique(tracks.track_id))
                tracker.save_yaml(pred_dir / "tracker.yaml")
                result = evaluate_dirs(dataset_dir, pred_dir, sequences=list(manifest.eval))
                write_report(result, pred_dir / "metrics")
                # a zero (or a low score) says why in figures, e.g. no detection reaching new_track_thresh
                conf = np.concatenate(confs) if confs else np.zeros(0)
                metrics[name] = {**result[COMBINED], "diagnosis": tracker.diagnose(conf, started)}
            return {"metrics": metrics}

        return self._stage("track", spec, fn, tag)

    # ---- the job -------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        method = method_info(cfg)
        missing = [k for k in method.get("requires", []) if OmegaConf.select(cfg, k) in (None, "")]
        if missing:
            raise Skipped(f"set {', '.join(missing)} (a local checkpoint or model folder; nothing is downloaded)")
        # configs are checked before anything is trained: a typo in the tracker config fails now, not in an hour
        if cfg.get("max_frames") is not None:  # read here, so named as set (not as the runner's argument)
            check_number("max_frames", cfg.max_frames, 1, integer=True)
        self.tracker = instantiate_node(cfg, "tracker", _convert_="all")
        self.detector = instantiate_node(cfg, "detector", _convert_="all")
        dataset_dir = Path(cfg.paths.dataset_dir)
        with config_node(cfg, "data"):
            manifest = instantiate(cfg.data, _convert_="all").build(dataset_dir)
        # what the data set's files hold (not where they are): every stage that reads them keys on it
        self.inputs = {split: dataset_identity(manifest, dataset_dir, [split]) for split in ("train", "eval")}
        trained = {key: self.train_model(name) for name, key in (method.get("needs") or {}).items()}
        annotation = self.annotate(trained, manifest, dataset_dir)
        exported = self.export(annotation, manifest, dataset_dir)
        # one detector per training seed (study.detector_seeds): the table gives mean and sd over them
        seeds = [int(x) for x in (cfg.study.get("detector_seeds") or [cfg.detector.seed])]
        per_seed: dict[int, tuple[StageResult, StageResult]] = {}
        for seed in seeds:
            tag = f"seed={seed}" if len(seeds) > 1 else ""
            detector = self.train_detector(exported, seed, tag)
            tracked = self.track(self.detect(detector, manifest, dataset_dir, tag), manifest, dataset_dir, tag)
            # the run keeps what it produced (the cache may be cleared): tracks per sequence with the tracker yaml
            # used and the metrics, the detector's weights, curves and ultralytics arguments
            keep = self.out_dir / (f"seed{seed}" if len(seeds) > 1 else "")
            shutil.copytree(tracked.dir, keep / "tracks", dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(".lock", "done.json", "spec.json"))
            weights = Path(detector.outputs["weights"])
            (keep / "detector").mkdir(parents=True, exist_ok=True)
            for src in (weights, weights.parent.parent / "results.csv", weights.parent.parent / "args.yaml"):
                if src.is_file():
                    shutil.copy2(src, keep / "detector" / src.name)
            per_seed[seed] = (detector, tracked)
        metrics = _over_seeds({s: t.outputs["metrics"] for s, (_, t) in per_seed.items()})
        primary = metrics[cfg.study.primary_variant]
        first = per_seed[seeds[0]][0]
        return {"IDF1": primary["IDF1"], "HOTA": primary["HOTA"], "tracker_variant": cfg.study.primary_variant,
                "IDF1_sd": primary.get("IDF1_sd"),
                "HOTA_sd": primary.get("HOTA_sd"), "seeds": seeds, "diagnosis": primary.get("diagnosis"),
                "interventions_per_100_frames": annotation.outputs["interventions_per_100_frames"],
                "label_quality": {s: v["quality"] for s, v in annotation.outputs["sequences"].items()},
                "detector": first.outputs["metrics"], "detector_curves": first.outputs["results_csv"],
                "detector_per_seed": {str(s): d.outputs["metrics"] for s, (d, _) in per_seed.items()},
                "variants": metrics,
                "models": {n[len("train_"):]: r.outputs.get("metrics") for n, r in self.stages.items()
                           if n.startswith("train_")}}


def _over_seeds(per_seed: Mapping[int, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each tracker variant's metrics over the detector seeds: the mean of every figure, the sample sd of IDF1
    and HOTA (None for one seed), each seed's IDF1, and the diagnoses that explain a zero (seed by seed)."""
    seeds = list(per_seed)
    out: dict[str, dict[str, Any]] = {}
    for variant in per_seed[seeds[0]]:
        runs = [per_seed[s][variant] for s in seeds]
        if len(runs) == 1:
            out[variant] = {**runs[0], "IDF1_sd": None, "HOTA_sd": None}
            continue
        keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
        agg: dict[str, Any] = {k: float(np.mean([r[k] for r in runs])) for k in keys}
        for k in ("IDF1", "HOTA"):
            agg[f"{k}_sd"] = float(np.std([r[k] for r in runs], ddof=1))
        agg["IDF1_per_seed"] = {str(s): r["IDF1"] for s, r in zip(seeds, runs, strict=True)}
        whys = [f"seed {s}: {r['diagnosis']['why']}" for s, r in zip(seeds, runs, strict=True)
                if (r.get("diagnosis") or {}).get("why")]
        agg["diagnosis"] = {"why": "; ".join(whys) or None,
                            "per_seed": {str(s): r.get("diagnosis") for s, r in zip(seeds, runs, strict=True)}}
        out[variant] = agg
    return out


def _without(value: Any, path: str, ignore: list[str]) -> Any:
    """``value`` (plain data found at dotted ``path``) without the dotted keys in ``ignore`` that lie under it."""
    if not isinstance(value, dict):
        return value
    prefix = f"{path}." if path else ""
    return {k: _without(v, f"{prefix}{k}", ignore) for k, v in value.items() if f"{prefix}{k}" not in ignore}


def method_info(cfg: DictConfig) -> dict[str, Any]:
    """Table 2's description of the job's method (``methods.<annotator choice>``), with what is derived from the
    annotator config: post-processing (the watershed split's refinement) and the prompt interval."""
    choice = cfg.study.method
    info = dict(to_plain(cfg.methods.get(choice)) or {"label": choice})
    info["label"] = f"{info.get('label', choice)}{cfg.study.get('label_suffix') or ''}"
    ann = cfg.annotator
    base = ann.get("base") or ann
    every = ann.get("every")
    if choice == "manual":
        interval = int(every) if every and int(every) > 1 else None
    else:
        interval = ann.get("prompt_interval") or every
    refine = (base.get("postprocess") or {}).get("refine")
    info.setdefault("post_processing", {"gmm": "GMM", "kmeans": "K-Means"}.get(refine, "-") if refine else "-")
    info["prompt_interval"] = int(interval) if interval else None
    info["annotator"] = choice
    return info


def study_job(cfg: DictConfig) -> dict[str, Any]:
    """Run one job and return its row (``status`` ok | skipped | failed); the row is written to ``row.json``."""
    from samqa_framework.study.report import base_row, write_row

    start = time.perf_counter()
    job = StudyJob(cfg)
    row = base_row(cfg, method_info(cfg))
    try:
        row.update(job.run(), status="ok")
    except Skipped as exc:
        row.update(status="skipped", reason=str(exc))
        log.warning("%s on %s skipped: %s", row["method"], row["dataset"], exc)
    except Exception as exc:
        # one failing job must not stop the others of a multirun; the row records why
        row.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
        log.exception("%s on %s failed", row["method"], row["dataset"])
        if not cfg.study.continue_on_error:
            raise
    finally:
        row["stages"] = {n: {"key": r.key, "wall_s": round(r.wall_s, 1), "cached": r.cached, "dir": str(r.dir)}
                         for n, r in job.stages.items()}
        row["wall_s"] = round(time.perf_counter() - start, 1)
        write_row(job.out_dir, row)
    return row
