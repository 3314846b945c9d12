"""The generate task (``samqa-generate``, ``api.generate``): build a data set (render synthetic rodents, or import
MOTChallenge / SLEAP labels) and print its summary."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from samqa_framework.data.preview import contact_sheet
from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.utils.hydra import config_node

log = logging.getLogger(__name__)


def summarize(root: Path, manifest: DatasetManifest) -> Table:
    table = Table(title=f"{manifest.name} ({manifest.species}, {manifest.num_animals} animals) in {root}")
    for col in ("sequence", "split", "frames", "size", "fps", "ids", "rows", "ignored rows"):
        table.add_column(col, justify="left" if col in ("sequence", "split") else "right", no_wrap=True)
    for split in ("train", "eval"):
        for seq in manifest.sequences(root, split):
            info = seq.info
            counts = ["-", "no ground truth", "-"]  # an unlabelled import: label it with samqa-annotate
            if seq.has_gt():
                gt = seq.gt()
                counts = [str(len(gt.ids)), str(len(gt)), str(int((gt.conf == 0).sum()))]
            table.add_row(seq.name, split, str(info.seq_length), f"{info.width}x{info.height}",
                          f"{info.frame_rate:g}", *counts)
    return table


def generate(cfg: DictConfig) -> Path:
    """Build the data set of ``cfg.data`` into ``cfg.out_dir``; returns that folder."""
    out_dir = Path(cfg.out_dir)
    with config_node(cfg, "data"):
        manifest = instantiate(cfg.data, _convert_="all").build(out_dir)
    console = Console(width=max(Console().width, 110))
    console.print(summarize(out_dir, manifest))
    if cfg.get("preview", False):
        for split in ("train", "eval"):
            for seq in manifest.sequences(out_dir, split):
                path = contact_sheet(seq, out_dir / f"preview_{seq.name}.png")
                log.info("preview: %s", path)
    console.print(f"data set written to {out_dir}")
    return out_dir
