"""Where the light SAM's image encoder runs at inference: eager PyTorch (default), ONNX Runtime or OpenVINO on the CPU.

``runtime="onnxruntime"`` and ``runtime="openvino"`` both export the (fused) encoder with ``torch.onnx`` at the
model's input size (one export, :func:`export_onnx`, shared by the two) and run that file: in an ONNX Runtime CPU
session, or compiled by OpenVINO for the CPU (its ONNX front end reads the file; latency hint, float32,
``threads`` inference threads). The exported file is cached under ``cache_dir`` in a name keyed on the encoder's
weights (a hash of every tensor), the input size and the versions of what writes it (torch, onnx), written to a
temporary file and renamed (never half a file), and only ever read from that cache, which this module alone
writes: a model file from elsewhere is never loaded. A missing package falls back to eager with a warning naming
it (a mature tool keeps working); ``strict=True`` makes it an error instead.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

RUNTIMES = ("eager", "onnxruntime", "openvino")
# onnx: what torch.onnx's exporter writes the file with (and part of the cache key).
_PACKAGES = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino", "onnx")}


def weights_hash(module: nn.Module) -> str:
    """SHA-256 of the module's parameters and buffers (names, shapes, dtypes, values)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        a = t.detach().cpu().reshape(-1).clone()  # flat: channels-last weights have no byte view
        h.update(f"{name}:{tuple(a.shape)}:{a.dtype}".encode())
        h.update(a.view(torch.uint8).numpy().tobytes() if a.numel() else b"")
    return h.hexdigest()


class OrtEncoder(nn.Module):
    """An image encoder run by an ONNX Runtime CPU session: the same call and output as the eager one."""

    def __init__(self, path: Path, threads: int, img_size: int) -> None:
        super().__init__()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # its default, stated
        # No spin-waiting between ops: on a CPU shared with other jobs (or with the annotator's own main thread,
        # which decodes masks while the prefetch worker encodes) a spinning pool only takes cores from them. Measured
        # beside study runs at 256 px: 326 -> 182 ms a frame, 214 -> 129 CPU-ms a frame.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = path
        self.img_size = img_size  # read by Sam.preprocess
        self._dummy = nn.Parameter(torch.zeros(0), requires_grad=False)  # .to() / .device for SamPredictor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"image": np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(out).to(x.device)


class OpenVinoEncoder(nn.Module):
    """An image encoder compiled by OpenVINO for the CPU: the same call and output as the eager one."""

    def __init__(self, path: Path, threads: int, img_size: int) -> None:
        super().__init__()
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints

        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", {
            hints.performance_mode: hints.PerformanceMode.LATENCY,  # one stream, all threads on one request
            hints.inference_precision: ov.Type.f32,  # not bf16 / f16 where the CPU has them: the eager numbers
            props.inference_num_threads: threads,
            # Threads not pinned to cores: on a shared CPU a pinned thread waits for its core (measured beside study
            # runs at 256 px: 237 -> 205 ms a frame, 146 -> 122 CPU-ms a frame).
            hints.enable_cpu_pinning: False,
        })
        self.request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one request: one inference at a time (the prefetch worker and the caller)
        self.path = path
        self.img_size = img_size  # read by Sam.preprocess
        self._dummy = nn.Parameter(torch.zeros(0), requires_grad=False)  # .to() / .device for SamPredictor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        with self._lock:
            self.request.infer({0: image})
            out = self.request.get_output_tensor(0).data.copy()  # the request's buffer is reused by the next call
        return torch.from_numpy(out).to(x.device)


def export_onnx(encoder: nn.Module, image_size: int, cache_dir: str | os.PathLike[str]) -> Path:
    """The encoder's ONNX file in ``cache_dir``, exported once per weights / size / versions (atomic write)."""
    onnx_version = importlib.metadata.version("onnx")  # not imported here: torch.onnx uses it
    key = hashlib.sha256(f"{weights_hash(encoder)}|{image_size}|torch {torch.__version__}|onnx {onnx_version}"
                         .encode()).hexdigest()[:24]
    cache = Path(cache_dir)
    path = cache / f"encoder-{image_size}-{key}.onnx"
    if path.is_file():
        log.info("ONNX encoder from cache: %s", path)
        return path
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache, suffix=".onnx.tmp")
    os.close(fd)
    try:
        # Traced at one fixed size: TinyViT's shape checks become constants, which is what we want here.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(encoder.eval(), (torch.zeros(1, 3, image_size, image_size),), tmp,
                              input_names=["image"], output_names=["embedding"], opset_version=17, dynamo=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("ONNX encoder exported: %s", path)
    return path


def _missing(runtime: str) -> list[str]:
    return [p for p in _PACKAGES.get(runtime, ()) if importlib.util.find_spec(p) is None]


def apply_runtime(encoder: nn.Module, image_size: int, runtime: str = "eager", threads: int | None = None,
                  cache_dir: str | os.PathLike[str] = "outputs/cache/onnx", strict: bool = False) -> nn.Module:
    """``encoder`` itself for ``eager``, else a module running it with ``runtime`` (see the module docstring)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r}: not one of {', '.join(RUNTIMES)}")
    if runtime == "eager":
        return encoder
    if missing := _missing(runtime):
        msg = (f"runtime={runtime} needs the package(s) {', '.join(missing)} (pip install 'samqa-framework[fast]')")
        if strict:
            raise RuntimeError(msg)
        log.warning("%s; running the encoder in eager PyTorch instead", msg)
        return encoder
    path = export_onnx(encoder, image_size, cache_dir)
    runner = OrtEncoder if runtime == "onnxruntime" else OpenVinoEncoder
    return runner(path, threads or torch.get_num_threads(), image_size)
