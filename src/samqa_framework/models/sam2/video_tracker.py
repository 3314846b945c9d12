"""Track box-prompted objects through a video one chunk of frames at a time with SAM 2's video predictor.

sam2's ``SAM2VideoPredictor.init_state`` loads a WHOLE video (an mp4, or a folder of ``<int>.jpg`` frames) into
memory, resized to the model's input: about 12 MB a frame at 1024 px. To stream long videos each chunk's frames
are written as JPEGs to a temporary folder under ``work_dir`` (removed afterwards), tracked from box prompts on
its first frame, and released before the next chunk; the caller re-prompts each chunk (e.g. with the boxes of
the previous chunk's last masks).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from sam2.sam2_video_predictor import SAM2VideoPredictor

JPEG_QUALITY = 95  # sam2 reads JPEG folders only; near-lossless keeps the masks close to those of raw frames


class Sam2ChunkTracker:
    """Masks of box-prompted objects over chunks of frames (``model`` from ``build_sam2_model(video=True)``).

    ``device`` is where the model runs (it is moved there); the chunk's frames stay on the CPU
    (``offload_video_to_cpu``) and only the frame being tracked is moved to ``device``.
    """

    def __init__(self, model: SAM2VideoPredictor, work_dir: str | os.PathLike[str], device: str = "cpu") -> None:
        if not isinstance(model, SAM2VideoPredictor):
            raise TypeError(f"model must be a SAM2VideoPredictor (build_sam2_model(video=True)), got "
                            f"{type(model).__name__}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.work_dir = Path(work_dir)
        self.frames_tracked = 0  # frames yielded so far, all chunks

    @staticmethod
    def _check_frames(frames: list[np.ndarray]) -> tuple[int, int]:
        size = frames[0].shape[:2] if isinstance(frames[0], np.ndarray) else None
        for i, frame in enumerate(frames):
            if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frame {i} of the chunk must be a uint8 (H, W, 3) BGR array, got "
                                 f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}")
            if frame.shape[:2] != size:
                raise ValueError(f"frame {i} of the chunk is {frame.shape[:2]}, frame 0 is {size}: one video, one size")
        return size

    def track_chunk(self, frames: list[np.ndarray],
                    boxes: dict[int, np.ndarray]) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Track the objects ``boxes`` (object id -> ``x1, y1, x2, y2`` in pixels of ``frames[0]``) through ``frames``.

        ``frames``: BGR uint8 (H, W, 3) arrays, one size. Yields, for every frame in order, ``(offset in the
        chunk, {object id: (H, W) bool mask})`` (mask logits > 0, at the frames' resolution); an object SAM 2
        loses has an empty mask. No objects: every frame has an empty dict.
        """
        if not frames:
            return
        size = self._check_frames(frames)
        prompts = {}
        for obj_id, given in boxes.items():
            box = np.asarray(given, dtype=np.float32).reshape(-1)
            if box.shape != (4,) or not np.isfinite(box).all():
                raise ValueError(f"box of object {obj_id} must be 4 finite numbers x1, y1, x2, y2, got {given}")
            prompts[int(obj_id)] = box
        if not prompts:
            for offset in range(len(frames)):
                self.frames_tracked += 1
                yield offset, {}
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="sam2_chunk_", dir=self.work_dir))
        try:
            for i, frame in enumerate(frames):
                if not cv2.imwrite(str(folder / f"{i}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                    raise OSError(f"cannot write frame {i} of the chunk to {folder}")
            yield from self._track(folder, prompts, size)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _track(self, folder: Path, prompts: dict[int, np.ndarray],
               size: tuple[int, int]) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        # sam2's methods run in inference mode themselves (generator-aware), so none is held across our yields.
        model = self.model
        state = model.init_state(str(folder), offload_video_to_cpu=True)
        try:
            for obj_id, box in prompts.items():
                model.add_new_points_or_box(state, frame_idx=0, obj_id=obj_id, box=box)
            for frame_idx, obj_ids, mask_logits in model.propagate_in_video(state):
                masks = (mask_logits[:, 0] > 0).cpu().numpy()  # (objects, H, W) at the JPEGs' (= frames') size
                if masks.shape[1:] != size:
                    raise RuntimeError(f"SAM 2 returned masks of {masks.shape[1:]} for frames of {size}")
                self.frames_tracked += 1
                yield int(frame_idx), {int(o): masks[i] for i, o in enumerate(obj_ids)}
        finally:
            model.reset_state(state)
            state.clear()  # drop the chunk's frames and cached features now, not at garbage collection
