"""samqa-generate: build a data set (render synthetic rodents, or import MOTChallenge / SLEAP labels).

    samqa-generate data=synthetic_mice data.size=quick out_dir=DIR
    samqa-generate data=sleap_clip out_dir=DIR
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from samqa_framework.data.preview import contact_sheet
from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.utils.hydra import CONFIG_DIR, config_node, run_task

log = logging.getLogger(__name__)


def summarize(root: Path, manifest: DatasetManifest) -> Table:
    table = Table(title=f"{manifest.name} ({manifest.species}, {manifest.num_animals} animals) in {root}")
    for col in ("sequence", "split", "frames", "size", "fps", "ids", "rows", "ignored rows"):
        table.add_column(col, justify="left" if col in ("sequence", "split") else "right", no_wrap=True)
    for split in ("train", "eval"):
        for seq in manifest.sequences(root, split):
            gt = seq.gt()
            info = seq.info
            table.add_row(seq.name, split, str(info.seq_length), f"{info.width}x{info.height}",
                          f"{info.frame_rate:g}", str(len(gt.ids)), str(len(gt)), str(int((gt.conf == 0).sum())))
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


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="generate")
@run_task
def main(cfg: DictConfig) -> None:
    generate(cfg)


if __name__ == "__main__":
    main()
