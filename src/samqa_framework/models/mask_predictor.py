"""What every prompted mask predictor shares (the light SAM's and SAM 2's): frame handling, prompt checks,
chunked decoding, and one image-encoder pass per frame.

All coordinates are in pixels of the ORIGINAL frame (x to the right, y down; boxes are ``x1, y1, x2, y2``);
masks come back at the frame's full resolution. A subclass wraps its library's predictor and says how to
encode an image, map prompts to model coordinates and decode one chunk of prompts.
"""

from __future__ import annotations

import abc
import hashlib
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

# Prompts decoded per mask-decoder call: bounds the (chunk, H, W) float masks held at full frame size.
PROMPT_CHUNK = 16
# Embeddings encoded ahead (``prefetch``) kept waiting for their frame; older ones are dropped. A loop prefetches the
# next frame only, so 2 leaves room for one frame that never asked for its embedding (e.g. nothing to prompt).
AHEAD = 2


def frame_key(frame: np.ndarray) -> tuple[tuple[int, ...], str, bytes]:
    """Content key of a frame: reused (overwritten) video buffers are not mistaken for the previous frame."""
    data = np.ascontiguousarray(frame)
    return data.shape, data.dtype.str, hashlib.blake2b(memoryview(data).cast("B"), digest_size=16).digest()


def as_rgb_uint8(frame: np.ndarray, bgr: bool) -> np.ndarray:
    """A uint8 (H, W, 3) RGB copy of a grey, RGB(A) or BGR(A) frame; anything else is a ValueError."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError(f"frame must be a uint8 numpy array, got {getattr(frame, 'dtype', type(frame).__name__)}")
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4) or min(frame.shape[:2]) < 1:
        raise ValueError(f"frame must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {frame.shape}")
    if frame.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(frame, 3, axis=2))
    frame = frame[:, :, :3]
    return np.ascontiguousarray(frame[:, :, ::-1] if bgr else frame)


def model_fingerprint(model: torch.nn.Module) -> str:
    """Content hash of a model's parameters and buffers: two predictors share memoised embeddings only when their
    weights are identical (a retrained or differently loaded model never reads another's)."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        data = tensor.detach().cpu().reshape(-1).contiguous()  # flat: size-1 dims may carry any stride
        h.update(str(data.dtype).encode())
        h.update(repr(tuple(tensor.shape)).encode())
        h.update(memoryview(data.view(torch.uint8).numpy() if data.numel() else b""))
    return h.hexdigest()


class EmbeddingMemo:
    """Image embeddings kept in memory across predictors of one process, least recently used first out.

    A hyperparameter sweep of SAM-QA's checks (``hparams_search=qa_pareto``) runs the loop many times over the same
    frames with the same model in one process (Hydra's basic launcher): only what comes after the encoder changes,
    so each frame is encoded once for the whole sweep. Keys: model weights, frame content and colour order.
    """

    def __init__(self) -> None:
        self._items: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> Any | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[0]

    def __contains__(self, key: tuple) -> bool:  # a look that is neither a hit nor a miss
        return key in self._items

    def put(self, key: tuple, value: Any, nbytes: int, limit_bytes: int) -> None:
        if nbytes > limit_bytes:
            return
        if key in self._items:
            self.bytes -= self._items.pop(key)[1]
        self._items[key] = (value, nbytes)
        self.bytes += nbytes
        while self.bytes > limit_bytes:
            _, (_, size) = self._items.popitem(last=False)
            self.bytes -= size

    def clear(self) -> None:
        self._items.clear()
        self.bytes = self.hits = self.misses = 0


# One per process: trials of a sweep build new predictors (same weights) and find the embeddings here.
EMBEDDING_MEMO = EmbeddingMemo()


class MaskPredictorBase(abc.ABC):
    """``set_frame`` runs the image encoder once; the ``predict_*`` methods call it themselves and reuse the
    embedding while the frame's content is unchanged (identical pixels, shape and colour order), so any number of
    prompt calls on one frame cost one encoder pass (``encoder_calls`` counts them). With ``multimask`` the
    decoder proposes three masks per prompt and the one with the highest predicted IoU is kept.

    :meth:`prefetch` encodes a frame ahead on a worker thread (subclasses that implement ``_encode_detached``): a
    video loop hands it the next frame, whose embedding does not depend on the current frame's labels, and the
    encoder runs while the loop decodes, cleans and checks the current frame's masks. :meth:`close` stops it.

    ``embedding_cache_mb`` > 0 keeps up to that many MB of embeddings in the process-wide :data:`EMBEDDING_MEMO`
    (subclasses that implement ``_embedding_state`` / ``_restore_embedding``), so that another predictor with the
    same weights (the next trial of a sweep) reuses them.

    ``ahead_threads``: torch's intra-op threads on the prefetch worker (null: the process's count). On a CPU whose
    cores the loop's own torch threads already fill, two teams of that size take turns on the cores; the worker's
    count is set on its own thread (OpenMP's thread count is per thread; the calling thread keeps its own) and the
    process's default is put back when the worker stops, so later stages run as they would without it.
    """

    def __init__(self, multimask: bool = False, embedding_cache_mb: float = 0,
                 ahead_threads: int | None = None) -> None:
        if embedding_cache_mb < 0:
            raise ValueError(f"embedding_cache_mb must be >= 0, got {embedding_cache_mb}")
        if ahead_threads is not None and ahead_threads < 1:
            raise ValueError(f"ahead_threads must be >= 1 or null, got {ahead_threads}")
        self.ahead_threads = ahead_threads
        self._threads_before = torch.get_num_threads()  # put back when an ahead_threads worker stops
        self.multimask = multimask
        self.embedding_cache_bytes = int(embedding_cache_mb * 2**20)
        self._model_key: str | None = None
        self._key: tuple | None = None
        self._bgr: bool | None = None
        self.encoder_calls = 0
        self._worker: ThreadPoolExecutor | None = None
        self._ahead: OrderedDict[tuple, Future] = OrderedDict()  # (frame key, bgr) -> its embedding being encoded

    # -- what a subclass provides ------------------------------------------------------------------------------
    device: torch.device

    @property
    @abc.abstractmethod
    def frame_size(self) -> tuple[int, int] | None:
        """(H, W) of the current frame, or None before the first."""

    @abc.abstractmethod
    def _encode(self, rgb: np.ndarray) -> None:
        """Run the image encoder on an RGB uint8 frame (under inference mode)."""

    @abc.abstractmethod
    def _boxes_to_model(self, boxes: torch.Tensor) -> torch.Tensor:
        """(K, 4) frame-pixel boxes to the decoder's input coordinates."""

    @abc.abstractmethod
    def _points_to_model(self, points: torch.Tensor) -> torch.Tensor:
        """(K, P, 2) frame-pixel points to the decoder's input coordinates."""

    @abc.abstractmethod
    def _predict_chunk(self, coords: torch.Tensor | None, labels: torch.Tensor | None, boxes: torch.Tensor | None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks (k, C, H, W) bool and predicted IoU (k, C) of up to PROMPT_CHUNK prompts."""

    def _memo_model(self) -> torch.nn.Module | None:
        """The model whose weights key the memo; None: this predictor cannot memoise embeddings."""
        return None

    # Optional capabilities: the memo (a _memo_model) and prefetching (can_prefetch) call these only on predictors
    # that provide them; a predictor without them never reaches the base versions below.
    def _embedding_state(self) -> tuple[Any, int]:
        """What ``_restore_embedding`` needs to make the current frame's embedding current again, and its bytes."""
        raise TypeError(f"{type(self).__name__} does not memoise embeddings (its _memo_model is None)")

    def _restore_embedding(self, state: Any) -> None:
        raise TypeError(f"{type(self).__name__} does not memoise embeddings (its _memo_model is None)")

    def _encode_detached(self, rgb: np.ndarray) -> Any:
        """Encode an RGB uint8 frame without touching the current frame's embedding; returns what
        ``_restore_embedding`` takes. Runs on the prefetch worker (under inference mode); one pass at a time."""
        raise TypeError(f"{type(self).__name__} cannot encode ahead (can_prefetch is False)")

    @property
    def can_prefetch(self) -> bool:
        return type(self)._encode_detached is not MaskPredictorBase._encode_detached

    def _encode_job(self, rgb: np.ndarray) -> Any:
        with torch.inference_mode():  # thread-local: the worker sets its own
            state = self._encode_detached(rgb)
        self.encoder_calls += 1  # only the worker counts while it exists (one thread at a time)
        return state

    # -- shared ------------------------------------------------------------------------------------------------
    def set_frame(self, frame: np.ndarray, bgr: bool = True) -> None:
        """Encode ``frame`` (uint8, (H, W, 3) BGR as OpenCV reads it, or RGB with ``bgr=False``; grey allowed).

        Does nothing when the same frame content, in the same colour order, is already encoded.
        """
        key = frame_key(frame)
        if self.frame_size is not None and key == self._key and bgr == self._bgr:
            return
        ahead = self._ahead.pop((key, bgr), None)
        if ahead is not None:  # encoded ahead: wait for it (an encoder error is raised here, in the caller)
            self._adopt(key, bgr, ahead.result())
            return
        memo_key = self._memo_key(key, bgr)
        if memo_key is not None:
            state = EMBEDDING_MEMO.get(memo_key)
            if state is not None:
                self._restore_embedding(state)
                self._key, self._bgr = key, bgr
                return
        rgb = as_rgb_uint8(frame, bgr)
        if self._worker is not None:  # through the worker, so that one encoder pass runs at a time
            self._adopt(key, bgr, self._worker.submit(self._encode_job, rgb).result())
            return
        self._key = self._bgr = None
        with torch.inference_mode():
            self._encode(rgb)
        self._key, self._bgr = key, bgr
        self.encoder_calls += 1
        if memo_key is not None:
            state, nbytes = self._embedding_state()
            EMBEDDING_MEMO.put(memo_key, state, nbytes, self.embedding_cache_bytes)

    def _memo_key(self, key: tuple, bgr: bool) -> tuple | None:
        """The frame's key in :data:`EMBEDDING_MEMO`; None when this predictor does not memoise."""
        if not self.embedding_cache_bytes or (model := self._memo_model()) is None:
            return None
        if self._model_key is None:
            self._model_key = model_fingerprint(model)
        return (self._model_key, key, bgr)

    def _adopt(self, key: tuple, bgr: bool, state: Any) -> None:
        """Make an embedding from the worker the current one (and memoise it when the memo is on)."""
        self._restore_embedding(state)
        self._key, self._bgr = key, bgr
        if (memo_key := self._memo_key(key, bgr)) is not None:
            state, nbytes = self._embedding_state()
            EMBEDDING_MEMO.put(memo_key, state, nbytes, self.embedding_cache_bytes)

    def prefetch(self, frame: np.ndarray, bgr: bool = True) -> bool:
        """Start encoding ``frame`` (colour order as :meth:`set_frame`) on the worker thread; the ``set_frame`` or
        ``predict_*`` call that reaches a frame of the same content takes that embedding instead of encoding again.
        The pixels are copied now (a reader may reuse its buffer). At most ``AHEAD`` embeddings wait, the oldest
        dropped first; a frame already in the embedding memo is not encoded again. Returns False, doing nothing, when
        this predictor cannot encode detached."""
        if not self.can_prefetch:
            return False
        key = (frame_key(frame), bgr)
        if key in self._ahead or (self.frame_size is not None and key == (self._key, self._bgr)):
            return True
        if (memo_key := self._memo_key(*key)) is not None and memo_key in EMBEDDING_MEMO:
            return True  # a sweep's later trial: set_frame finds it in the memo
        rgb = as_rgb_uint8(frame, bgr)
        if self._worker is None:
            self._worker = self._start_worker()
        self._ahead[key] = self._worker.submit(self._encode_job, rgb)
        while len(self._ahead) > AHEAD:
            self._ahead.popitem(last=False)[1].cancel()  # not started: never runs; running: its result is dropped
        return True

    def _start_worker(self) -> ThreadPoolExecutor:
        if self.ahead_threads is None:
            return ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode-ahead")
        # torch.set_num_threads also sets the default that threads started later take (and MKL's process-wide
        # count): the process's count is restored in close()
        self._threads_before = torch.get_num_threads()  # now, not at construction: the caller may have changed it
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode-ahead",
                                  initializer=torch.set_num_threads, initargs=(self.ahead_threads,))

    def close(self) -> None:
        """Stop the prefetch worker (a pass in progress finishes first) and drop the embeddings encoded ahead. The
        predictor stays usable (a later ``prefetch`` starts a new worker)."""
        for pending in self._ahead.values():
            pending.cancel()
        self._ahead.clear()
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self._worker = None
            if self.ahead_threads is not None:
                torch.set_num_threads(self._threads_before)

    def _ensure(self, frame: np.ndarray, bgr: bool | None) -> None:
        if bgr is None:  # keep whichever colour order the frame was set with
            if self.frame_size is not None and frame_key(frame) == self._key:
                return
            bgr = True
        self.set_frame(frame, bgr=bgr)

    def _empty(self) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.frame_size
        return np.zeros((0, h, w), dtype=bool), np.zeros((0,), dtype=np.float32)

    def _decode(self, coords: torch.Tensor | None, labels: torch.Tensor | None,
                boxes: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray]:
        count = len(boxes) if boxes is not None else len(coords)
        masks_out, scores_out = [], []
        with torch.inference_mode():
            for start in range(0, count, PROMPT_CHUNK):
                part = slice(start, start + PROMPT_CHUNK)
                masks, scores = self._predict_chunk(None if coords is None else coords[part],
                                                    None if labels is None else labels[part],
                                                    None if boxes is None else boxes[part])
                best = scores.argmax(dim=1)  # (k,): index 0 when there is one mask per prompt
                rows = torch.arange(len(best), device=best.device)
                masks_out.append(masks[rows, best].cpu().numpy())
                scores_out.append(scores[rows, best].float().cpu().numpy())
        return np.concatenate(masks_out).astype(bool, copy=False), np.concatenate(scores_out).astype(np.float32)

    def predict_boxes(self, frame: np.ndarray, boxes_xyxy: np.ndarray,
                      bgr: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Masks for K boxes ``(K, 4)`` as ``x1, y1, x2, y2`` in frame pixels.

        Returns ``masks`` (K, H, W) bool at the frame's resolution and ``scores`` (K,) float32, the decoder's
        predicted IoU of each mask. ``bgr``: colour order of ``frame`` (None: as last set, else BGR).
        """
        self._ensure(frame, bgr)
        boxes = np.asarray(boxes_xyxy, dtype=np.float32)
        if boxes.size == 0:
            return self._empty()
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes_xyxy must have shape (K, 4), got {boxes.shape}")
        return self._decode(None, None, self._boxes_to_model(torch.as_tensor(boxes, device=self.device)))

    def predict_points(self, frame: np.ndarray, points: np.ndarray, labels: np.ndarray | None = None,
                       bgr: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Masks for K prompts of P points each: ``points`` (K, P, 2) as ``x, y`` in frame pixels.

        ``labels`` (K, P): 1 foreground, 0 background (default: all foreground). Returns ``masks`` (K, H, W) bool
        and ``scores`` (K,) float32 as :meth:`predict_boxes`.
        """
        self._ensure(frame, bgr)
        pts = np.asarray(points, dtype=np.float32)
        if pts.size == 0:
            return self._empty()
        if pts.ndim == 2 and pts.shape[1] == 2:  # (K, 2): one point per prompt
            pts = pts[:, None, :]
        if pts.ndim != 3 or pts.shape[2] != 2:
            raise ValueError(f"points must have shape (K, P, 2), got {pts.shape}")
        lab = np.ones(pts.shape[:2], dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        if lab.shape != pts.shape[:2] and not (lab.shape == pts.shape[:1] and pts.shape[1] == 1):
            raise ValueError(f"labels must have shape {pts.shape[:2]}, got {lab.shape}")
        coords = self._points_to_model(torch.as_tensor(pts, device=self.device))
        return self._decode(coords, torch.as_tensor(lab.reshape(pts.shape[:2]), device=self.device), None)
