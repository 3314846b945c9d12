"""Where the light SAM's image encoder runs at inference: eager PyTorch (default), ONNX Runtime or OpenVINO on
the CPU.

``runtime="onnxruntime"`` exports the (fused) encoder with ``torch.onnx`` at the model's input size and runs it
in an ONNX Runtime CPU session. The exported file is cached under ``cache_dir`` in a name keyed on the encoder's
weights (a hash of every tensor), the input size and the torch / onnx / onnxruntime versions, written to a temporary
file and renamed (never half a file), and only ever read from that cache, which this module alone writes: a
model file from elsewhere is never loaded. A missing package falls back to eager with a warning naming it
(a mature tool keeps working); ``strict=True`` makes it an error instead.

``runtime="onnxruntime_int8"`` runs the same export with its matrix products quantised to int8 (ONNX Runtime's
dynamic quantisation: weights int8 per tensor, activations quantised per call), cached beside it the same way. Only
``MatMul`` is quantised: the fused convolutions' weights are computed in the traced graph, not stored as the
initializers ONNX Runtime's conv quantiser needs, and the linear layers of TinyViT's attention stages are most of its
time at the study's sizes. The price is measured, not assumed: on the study's fine-tuned student (320 px, synthetic
rats, GT boxes) the masks kept IoU 0.9995 with eager's (min 0.997; ``scripts/bench_encoders.py --iou-checkpoint``);
``scripts/bench_annotate.py`` compares the labels.

With ``decoder=True`` (``SamMaskPredictor(runtime_decoder=...)``) SAM's mask decoder runs in ONNX Runtime too, in
float32 under either runtime (exported the same way, with the number of prompts and of prompt tokens as dynamic
axes). SAM-QA calls it about twice per frame on a handful of boxes: eager PyTorch spends most of each call in op
dispatch over small tensors (cProfile, 300 quick rats frames: 9.3 s of the loop's 38.8 s), which a fused graph
saves. Quantising it was not tried: it is 4 M parameters, and its masks are what the checks judge.

``runtime="openvino"`` / ``"openvino_bf16"`` compile the same ONNX export with OpenVINO's CPU plugin (its runtime
only: ``Core.read_model``; the converter, which carries OpenVINO's telemetry, is never imported), at float32 or
bfloat16 inference precision. On CPUs with AMX (Sapphire Rapids and later, as this project's machines) bfloat16
matrix products run on the AMX tiles: the encoder ran ~2.4x faster than the int8 ONNX Runtime path at 1024 px with
a fifth of its error (random weights, under load: 381 vs 908 ms, relative embedding error 0.014 vs 0.080); on a CPU
without bfloat16 OpenVINO computes in float32. The mask decoder then runs in OpenVINO at float32 (dynamic prompt
axes).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from samqa_framework.utils.signal_stack import ensure_roomy_alt_stack

log = logging.getLogger(__name__)

RUNTIMES = ("eager", "onnxruntime", "onnxruntime_int8", "openvino", "openvino_bf16")
_PACKAGES = {"onnxruntime": ("onnxruntime", "onnx"), "onnxruntime_int8": ("onnxruntime", "onnx"),
             "openvino": ("openvino", "onnx"), "openvino_bf16": ("openvino", "onnx")}
_OV_PRECISION = {"openvino": "f32", "openvino_bf16": "bf16"}


def weights_hash(module: nn.Module) -> str:
    """SHA-256 of the module's parameters and buffers (names, shapes, dtypes, values)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        a = t.detach().cpu().reshape(-1).clone()  # flat: channels-last weights have no byte view
        h.update(f"{name}:{tuple(a.shape)}:{a.dtype}".encode())
        h.update(a.view(torch.uint8).numpy().tobytes() if a.numel() else b"")
    return h.hexdigest()


Graph = Callable[[list[np.ndarray]], list[np.ndarray]]  # a compiled ONNX graph: its inputs in order -> outputs


def _onnxruntime_graph(path: Path, threads: int) -> Graph:
    """``path`` in an ONNX Runtime CPU session on ``threads`` threads that sleep between runs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # ONNX Runtime's pool spins after each run by default; in SAM-QA's loop torch runs the mask decoder right after
    # the encoder, and the spinning threads took its cores: the decoder ran 2x slower (cProfile, 300 quick rats
    # frames: 18.2 s vs 9.3 s), eating most of int8's encoder gain.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda inputs: session.run(None, dict(zip(names, inputs, strict=True)))


def _openvino_graph(path: Path, threads: int, precision: str) -> Graph:
    """``path`` compiled by OpenVINO's CPU plugin for latency on ``threads`` threads at ``precision`` (f32 | bf16)."""
    import openvino as ov

    core = ov.Core()
    request = core.compile_model(core.read_model(str(path)), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": "LATENCY"}).create_infer_request()
    ensure_roomy_alt_stack()  # the plugin left this thread a signal stack too small for AMX frames: see there
    # copies: the request reuses its output buffers on the next call
    return lambda inputs: [np.array(out) for out in request.infer(inputs).values()]


def _graph(runtime: str, path: Path, threads: int, precision: str = "f32") -> Graph:
    return _openvino_graph(path, threads, precision) if runtime in _OV_PRECISION else _onnxruntime_graph(path, threads)


def _feed(tensors: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    return [np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32) for t in tensors]


class RuntimeEncoder(nn.Module):
    """An image encoder run by a CPU runtime (``runtime``: ONNX Runtime or OpenVINO) from its ONNX export: the same
    call and output as the eager one."""

    def __init__(self, runtime: str, path: Path, threads: int, img_size: int, precision: str = "f32") -> None:
        super().__init__()
        self.run = _graph(runtime, path, threads, precision)
        self.runtime, self.path, self.precision = runtime, path, precision
        self.img_size = img_size  # read by Sam.preprocess
        self._dummy = nn.Parameter(torch.zeros(0), requires_grad=False)  # .to() / .device for SamPredictor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.run(_feed((x,)))[0]).to(x.device)


_DECODER_INPUTS = ("image_embeddings", "image_pe", "sparse_prompt_embeddings", "dense_prompt_embeddings")


class _DecoderCall(nn.Module):
    """The mask decoder with ``multimask_output`` fixed: what is exported (a graph has no bool argument)."""

    def __init__(self, decoder: nn.Module, multimask: bool) -> None:
        super().__init__()
        self.decoder, self.multimask = decoder, multimask

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder(*inputs, multimask_output=self.multimask)


class RuntimeMaskDecoder(nn.Module):
    """SAM's mask decoder run by a CPU runtime from its ONNX export, at float32: segment-anything's call and outputs.
    The export holds one ``multimask_output``; a call with the other runs the eager decoder it keeps."""

    def __init__(self, runtime: str, path: Path, threads: int, eager: nn.Module, multimask: bool) -> None:
        super().__init__()
        self.run = _graph(runtime, path, threads)
        self.runtime, self.path, self.multimask = runtime, path, multimask
        self.eager = eager

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse_prompt_embeddings: torch.Tensor,
                dense_prompt_embeddings: torch.Tensor, multimask_output: bool) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = (image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings)
        if multimask_output != self.multimask:
            return self.eager(*inputs, multimask_output=multimask_output)
        masks, iou = self.run(_feed(inputs))
        device = image_embeddings.device
        return torch.from_numpy(masks).to(device), torch.from_numpy(iou).to(device)


def export_decoder_onnx(decoder: nn.Module, embedding_size: int, multimask: bool,
                        cache_dir: str | os.PathLike[str]) -> Path:
    """The mask decoder's ONNX file in ``cache_dir`` for image embeddings of ``embedding_size`` squared, exported
    once per weights / size / ``multimask`` / versions (atomic write); prompts and their tokens are dynamic axes."""
    dim, side = decoder.transformer_dim, embedding_size
    example = (torch.zeros(1, dim, side, side), torch.zeros(1, dim, side, side), torch.zeros(2, 2, dim),
               torch.zeros(2, dim, side, side))
    return _export_cached(_DecoderCall(decoder, multimask), example, cache_dir, f"mask_decoder-{side}-multimask"
                          f"{int(multimask)}", "mask decoder", input_names=list(_DECODER_INPUTS),
                          output_names=["masks", "iou_predictions"],
                          dynamic_axes={"sparse_prompt_embeddings": {0: "prompts", 1: "tokens"},
                                        "dense_prompt_embeddings": {0: "prompts"},
                                        "masks": {0: "prompts"}, "iou_predictions": {0: "prompts"}})


def _export_cached(module: nn.Module, inputs: tuple[torch.Tensor, ...], cache_dir: str | os.PathLike[str], name: str,
                   what: str, **export_args: object) -> Path:
    """``module`` traced on ``inputs`` by ``torch.onnx`` into ``cache_dir/<name>-<key>.onnx``, the key a hash of its
    weights, ``name``, the inputs' shapes and the versions of torch, onnx and onnxruntime (its quantiser derives the
    int8 file from this one): exported once (atomic write)."""
    import onnx

    shapes = [tuple(t.shape) for t in inputs]
    ort = _version("onnxruntime")
    key = hashlib.sha256(f"{weights_hash(module)}|{name}|{shapes}|torch {torch.__version__}|onnx {onnx.__version__}"
                         f"|ort {ort}".encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"{name}-{key}.onnx"
    if path.is_file():
        log.info("ONNX %s from cache: %s", what, path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)

    def export(tmp: str) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(module.eval(), inputs, tmp, opset_version=17, dynamo=False, **export_args)

    _write_atomically(path, export)
    log.info("ONNX %s exported: %s", what, path)
    return path


def _write_atomically(path: Path, write: Callable[[str], object]) -> None:
    """``write(tmp)`` into a temporary file beside ``path``, then renamed onto it: never half a model file (the
    writers here, torch.onnx and ONNX Runtime's quantiser, take a file name, not a stream: utils.io.atomic_open
    does not fit)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export_onnx(encoder: nn.Module, image_size: int, cache_dir: str | os.PathLike[str]) -> Path:
    """The encoder's ONNX file in ``cache_dir``, exported once per weights / size / versions (atomic write). Traced
    at one fixed size: TinyViT's shape checks become constants, which is what we want here."""
    return _export_cached(encoder, (torch.zeros(1, 3, image_size, image_size),), cache_dir, f"encoder-{image_size}",
                          "encoder", input_names=["image"], output_names=["embedding"])


def quantize_onnx(path: Path) -> Path:
    """The int8 (MatMul) version of the exported ``path``, beside it, made once (atomic write)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = path.with_name(path.name.removesuffix(".onnx") + ".int8.onnx")
    if out.is_file():
        log.info("int8 ONNX encoder from cache: %s", out)
        return out
    _write_atomically(out, lambda tmp: quantize_dynamic(str(path), tmp, op_types_to_quantize=["MatMul"],
                                                        weight_type=QuantType.QInt8))
    log.info("int8 ONNX encoder written: %s", out)
    return out


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "none"


def _missing(runtime: str) -> list[str]:
    return [p for p in _PACKAGES.get(runtime, ()) if importlib.util.find_spec(p) is None]


def _available(runtime: str, strict: bool, part: str) -> bool:
    """Whether ``runtime`` can run here (``eager`` always); a missing package warns or, with ``strict``, fails."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r}: not one of {', '.join(RUNTIMES)}")
    if runtime == "eager":
        return False
    if missing := _missing(runtime):
        msg = (f"runtime={runtime} needs the package(s) {', '.join(missing)} (pip install 'samqa-framework[fast]')")
        if strict:
            raise RuntimeError(msg)
        log.warning("%s; running the %s in eager PyTorch instead", msg, part)
        return False
    return True


def apply_decoder_runtime(decoder: nn.Module, embedding_size: int, multimask: bool, runtime: str = "eager",
                          threads: int | None = None, cache_dir: str | os.PathLike[str] = "outputs/cache/onnx",
                          strict: bool = False) -> nn.Module:
    """``decoder`` itself for ``eager``, else SAM's mask decoder in ONNX Runtime or OpenVINO (as the encoder's
    ``runtime``), float32 (see the module docstring)."""
    if not _available(runtime, strict, "mask decoder"):
        return decoder
    path = export_decoder_onnx(decoder.eval(), embedding_size, multimask, cache_dir)
    return RuntimeMaskDecoder(runtime, path, threads or torch.get_num_threads(), decoder, multimask)


def apply_runtime(encoder: nn.Module, image_size: int, runtime: str = "eager", threads: int | None = None,
                  cache_dir: str | os.PathLike[str] = "outputs/cache/onnx", strict: bool = False) -> nn.Module:
    """``encoder`` itself for ``eager``, else a module running it with ``runtime`` (see the module docstring)."""
    if not _available(runtime, strict, "encoder"):
        return encoder
    path = export_onnx(encoder, image_size, cache_dir)
    if runtime == "onnxruntime_int8":
        path = quantize_onnx(path)
    return RuntimeEncoder(runtime, path, threads or torch.get_num_threads(), image_size,
                          _OV_PRECISION.get(runtime, "f32"))
