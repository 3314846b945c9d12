"""Sweep SAM-QA's quality-check thresholds on a synthetic sequence (oracle prompts) and print what each costs.

The paper's overlap and size thresholds were lost from our copy; this chooses ours. For each setting it runs the
whole SAM-QA loop and reports label quality (mean box IoU, identity switches) against interventions per 100
frames. Image embeddings are computed once per frame and reused by every setting (the settings change only what
happens after the encoder), so a sweep costs little more than one run.

    python scripts/sweep_qa.py --checkpoint outputs/train/<run>/sam_finetune.pt --data synthetic_rats \
        --out outputs/sweep_qa_rats.json [--frames 1000] [--overlap 0.05 0.1 0.2 0.3] \
        [--size 0.6,1.6 0.5,2.0 0.4,2.5] [--recheck 30 90] [--refine 0 1] [--box-margin 0.05 0.1]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path
from typing import ClassVar

import torch

from samqa_framework.utils.io import atomic_write_json


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", default="synthetic_rats")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--overlap", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3])
    ap.add_argument("--size", nargs="+", default=["0.6,1.6", "0.5,2.0", "0.4,2.5"])
    ap.add_argument("--recheck", type=int, nargs="+", default=[30])
    ap.add_argument("--refine", type=int, nargs="+", default=None, help="qa.refine_passes (default: the config's)")
    ap.add_argument("--box-margin", type=float, nargs="+", default=None, help="qa.box_margin (default: the config's)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from segment_anything import SamPredictor

    from samqa_framework.annotate.prompts import OraclePrompts
    from samqa_framework.annotate.runner import annotate_sequence
    from samqa_framework.annotate.samqa.annotator import SamQaAnnotator
    from samqa_framework.api import compose
    from samqa_framework.models.mask_predictor import frame_key
    from samqa_framework.models.sam.predictor import SamMaskPredictor

    torch.set_num_threads(2)
    cfg = compose("annotate", [f"data={args.data}", f"model.image_size={args.image_size}",
                               f"model.checkpoint={args.checkpoint}"], output_dir=args.out.parent)
    root = Path(cfg.dataset_dir)
    manifest = instantiate(cfg.data, _convert_="all").build(root)
    seq = manifest.sequences(root, "train")[0]
    base_qa = OmegaConf.to_container(cfg.qa, resolve=True)

    class CachedEmbeddings(SamMaskPredictor):
        """The same predictor, remembering each frame's embedding across the sweep's runs."""

        cache: ClassVar[dict] = {}

        def set_frame(self, frame, bgr=True):  # the parent's signature
            key = (frame_key(frame), bgr)
            hit = self.cache.get(key)
            if hit is None:
                super().set_frame(frame, bgr)
                p: SamPredictor = self._predictor
                self.cache[key] = (p.features, p.original_size, p.input_size)
                return
            p = self._predictor
            p.features, p.original_size, p.input_size = hit
            p.is_image_set = True
            self._key, self._bgr = key[0], bgr

    predictor = CachedEmbeddings(instantiate(cfg.model))
    rows = []
    refines = args.refine or [int(base_qa.get("refine_passes", 0))]
    margins = args.box_margin or [float(base_qa["box_margin"])]
    for overlap, size, recheck, refine, margin in itertools.product(args.overlap, args.size, args.recheck, refines,
                                                                    margins):
        lo, hi = (float(v) for v in size.split(","))
        qa = {**base_qa, "overlap_thresh": overlap, "size_ratio": [lo, hi], "recheck_missing": recheck,
              "refine_passes": refine, "box_margin": margin}
        annotator = SamQaAnnotator(predictor, OraclePrompts(), qa)
        with tempfile.TemporaryDirectory() as tmp:
            result = annotate_sequence(annotator, seq, tmp, {}, max_frames=args.frames, progress=False,
                                       num_animals=manifest.num_animals)
        q = result.quality
        row = {"overlap_thresh": overlap, "size_ratio": [lo, hi], "recheck_missing": recheck, "refine_passes": refine,
               "box_margin": margin,
               **{k: q[k] for k in ("mean_box_iou", "mean_mask_iou", "id_switches", "recall", "precision",
                                    "interventions_per_100_frames", "frames_recovered")}}
        rows.append(row)
        print(f"overlap {overlap:<5} size [{lo}, {hi}]  recheck {recheck:<4} refine {refine} margin {margin:<5} "
              f"box IoU {q['mean_box_iou']:.3f}  "
              f"mask IoU {q['mean_mask_iou']:.3f}  IDSW {q['id_switches']:<3} recall {q['recall']:.3f}  "
              f"interventions/100 {q['interventions_per_100_frames']:.2f}", flush=True)
    atomic_write_json(args.out, {"data": args.data, "frames": args.frames, "checkpoint": args.checkpoint,
                                 "sequence": seq.name, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
