"""Where manual prompts come from when an annotator needs a person: every call is one intervention.

- ``OraclePrompts``: the ground-truth boxes of the frame (experiments: counts what a person would have done).
- ``QueuePrompts``: a real person. The frames that need boxes are written to
  ``<queue_dir>/<sequence>/requests.json`` with a preview image each; the run stops (:class:`PromptsNeeded`),
  the person writes boxes to ``<queue_dir>/<sequence>/answers.json`` and runs the same command
  again, which resumes at that frame.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from samqa_framework.annotate.base import FrameLabels
from samqa_framework.annotate.ground_truth import GroundTruthFrames
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.errors import DataFormatError, SamqaError
from samqa_framework.utils.io import atomic_write_json


class PromptsNeeded(SamqaError):
    """The run stopped because a person must supply boxes; the labels so far are kept."""

    exit_code = 3

    def __init__(self, frame: int, requests: Path, answers: Path) -> None:
        super().__init__(f"frame {frame} needs manual boxes: see {requests} (preview images beside it), write "
                         f"them to {answers} as {{\"{frame}\": [{{\"id\": 1, \"box\": [x1, y1, x2, y2]}}, ...]}} "
                         f"and run the same command again to resume")
        self.frame = frame


class PromptProvider(abc.ABC):
    """Boxes (``x1, y1, x2, y2`` pixels) with identities for a frame that a method could not label alone."""

    def start(self, sequence: Sequence) -> None:  # noqa: B027 - optional hook
        """Bind to the sequence being annotated."""

    @abc.abstractmethod
    def boxes(self, frame: int, image: np.ndarray, current: FrameLabels | None = None) -> dict[int, np.ndarray]:
        """Manual boxes of every visible animal of ``frame``. ``current``: the method's failed labels (context)."""


class OraclePrompts(PromptProvider):
    """The ground truth plays the person."""

    def __init__(self) -> None:
        self._gt: GroundTruthFrames | None = None

    def start(self, sequence: Sequence) -> None:
        self._gt = GroundTruthFrames(sequence, masks=False)

    def boxes(self, frame: int, image: np.ndarray, current: FrameLabels | None = None) -> dict[int, np.ndarray]:
        if self._gt is None:
            raise RuntimeError("OraclePrompts.start(sequence) was not called")
        return self._gt.boxes(frame)


def _parse_answers(path: Path, width: int, height: int) -> dict[int, dict[int, np.ndarray]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataFormatError(path, f"not valid JSON ({exc})") from None
    if not isinstance(data, Mapping):
        raise DataFormatError(path, 'expected {"<frame>": [{"id": <int>, "box": [x1, y1, x2, y2]}, ...]}')
    answers: dict[int, dict[int, np.ndarray]] = {}
    for key, items in data.items():
        where = f"frame {key}"
        try:
            frame = int(key)
            boxes = {int(item["id"]): np.asarray([float(v) for v in item["box"]], dtype=np.float64) for item in items}
        except (ValueError, KeyError, TypeError) as exc:
            raise DataFormatError(path, f"{where}: malformed entry ({exc.__class__.__name__}: {exc}); expected a list "
                                  'of {"id": <int>, "box": [x1, y1, x2, y2]}') from None
        for track_id, box in boxes.items():
            if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
                raise DataFormatError(path, f"{where}, id {track_id}: box {box.tolist()} is not x1 < x2, y1 < y2")
            if box[0] < -1 or box[1] < -1 or box[2] > width + 1 or box[3] > height + 1:
                raise DataFormatError(path, f"{where}, id {track_id}: box {box.tolist()} lies outside the "
                                      f"{width}x{height} frame")
        answers[frame] = boxes
    return answers


class QueuePrompts(PromptProvider):
    """A person answers through files in ``queue_dir`` (see the module docstring)."""

    def __init__(self, queue_dir: str | os.PathLike[str]) -> None:
        self.base_dir = Path(queue_dir)
        self.queue_dir = self.base_dir
        self.size = (0, 0)

    @property
    def requests_path(self) -> Path:
        return self.queue_dir / "requests.json"

    @property
    def answers_path(self) -> Path:
        return self.queue_dir / "answers.json"

    def start(self, sequence: Sequence) -> None:
        self.queue_dir = self.base_dir / sequence.name  # frame numbers are per sequence
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        self.size = (sequence.info.width, sequence.info.height)

    def boxes(self, frame: int, image: np.ndarray, current: FrameLabels | None = None) -> dict[int, np.ndarray]:
        if self.answers_path.is_file():
            answers = _parse_answers(self.answers_path, *self.size)
            if frame in answers:
                return answers[frame]
        preview = self.queue_dir / f"frame_{frame:06d}.png"
        overlay = image.copy()
        for inst in current.instances if current else []:  # what the method proposed, for the person to fix
            x1, y1, x2, y2 = (round(v) for v in inst.box)
            cv2.rectangle(overlay, (x1, y1), (x2, y2), (0, 0, 255), 1)
            cv2.putText(overlay, str(inst.track_id), (x1, max(y1 - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (0, 0, 255), 1)
        cv2.imwrite(str(preview), overlay)
        proposed = [{"id": i.track_id, "box": [round(float(v), 1) for v in i.box]}
                    for i in (current.instances if current else [])]
        atomic_write_json(self.requests_path, {"frame": frame, "preview": preview.name, "proposed": proposed,
                                               "answer_in": self.answers_path.name})
        raise PromptsNeeded(frame, self.requests_path, self.answers_path)
