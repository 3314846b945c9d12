"""The encoder runtimes (ONNX Runtime, OpenVINO) against eager PyTorch: embeddings within 1e-3 (max abs), masks
IoU >= 0.99; the cache; the fallback when a package is missing."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from samqa_framework.models.sam.builder import build_sam
from samqa_framework.models.sam.encoders import TimmEncoder
from samqa_framework.models.sam.predictor import SamMaskPredictor
from samqa_framework.models.sam.runtime import apply_runtime, export_onnx

SIZE = 64
BOXES = np.array([[4.0, 6.0, 40.0, 44.0], [20.0, 10.0, 60.0, 58.0]])
EMBED_TOL = 1e-3  # float32 through a different kernel library: differences of order 1e-5 expected


def _sam(seed: int = 0):
    torch.manual_seed(seed)
    return build_sam(TimmEncoder("tiny_vit_5m_224", img_size=SIZE))


def _frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)


# Each runtime's packages, skipped by name where absent (never silently).
NEEDS = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino", "onnx")}
RUNNERS = {"onnxruntime": "OrtEncoder", "openvino": "OpenVinoEncoder"}


def _needs(runtime: str) -> None:
    for package in NEEDS[runtime]:
        pytest.importorskip(package, reason=f"{package} not installed (the 'fast' extra; runtime={runtime})")


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_runtime_matches_eager(runtime, tmp_path) -> None:
    _needs(runtime)
    eager = SamMaskPredictor(_sam())
    fast = SamMaskPredictor(_sam(), runtime=runtime, runtime_threads=1, runtime_cache_dir=str(tmp_path))
    assert type(fast.sam.image_encoder).__name__ == RUNNERS[runtime]
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        a, b = eager.sam.image_encoder(x), fast.sam.image_encoder(x)
    assert a.shape == b.shape and b.dtype == torch.float32
    assert (a - b).abs().max().item() < EMBED_TOL
    m_eager, _ = eager.predict_boxes(_frame(), BOXES)
    m_fast, _ = fast.predict_boxes(_frame(), BOXES)
    assert len(m_eager) == len(m_fast) == len(BOXES)
    for a, b in zip(m_eager, m_fast, strict=True):
        union = np.logical_or(a, b).sum()
        assert union == 0 or np.logical_and(a, b).sum() / union >= 0.99


def test_openvino_output_not_overwritten_by_the_next_call(tmp_path) -> None:
    """The compiled request reuses its output buffer: a returned embedding must be a copy."""
    _needs("openvino")
    enc = apply_runtime(_sam().image_encoder.fuse_for_inference(), SIZE, "openvino", 1, tmp_path, strict=True)
    x, y = torch.randn(1, 3, SIZE, SIZE), torch.randn(1, 3, SIZE, SIZE)
    first = enc(x)
    kept = first.clone()
    enc(y)
    assert torch.equal(first, kept) and not torch.equal(first, enc(y))


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_second_build_reads_the_cached_export(runtime, tmp_path, monkeypatch) -> None:
    _needs(runtime)
    calls = []
    real = torch.onnx.export
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: calls.append(1) or real(*a, **k))
    enc = _sam(0).image_encoder.fuse_for_inference()
    first = apply_runtime(enc, SIZE, runtime, 1, tmp_path, strict=True)
    second = apply_runtime(enc, SIZE, runtime, 1, tmp_path, strict=True)
    assert len(calls) == 1 and first.path == second.path
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]


def test_onnx_cache_reused_and_reexported_when_weights_change(tmp_path) -> None:
    pytest.importorskip("onnx", reason="onnx not installed (the 'fast' extra)")
    enc = _sam(0).image_encoder.fuse_for_inference()
    first = export_onnx(enc, SIZE, tmp_path)
    mtime = first.stat().st_mtime_ns
    assert export_onnx(enc, SIZE, tmp_path) == first and first.stat().st_mtime_ns == mtime
    other = export_onnx(_sam(1).image_encoder.fuse_for_inference(), SIZE, tmp_path)
    assert other != first and other.is_file()
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_missing_package_warns_and_falls_back_or_fails_when_strict(runtime, monkeypatch, caplog) -> None:
    import samqa_framework.models.sam.runtime as rt

    monkeypatch.setattr(rt, "_PACKAGES", {**rt._PACKAGES, runtime: ("no_such_package_xyz",)})
    enc = _sam().image_encoder
    with caplog.at_level(logging.WARNING, logger=rt.__name__):
        assert apply_runtime(enc, SIZE, runtime) is enc
    assert "no_such_package_xyz" in caplog.text and f"runtime={runtime}" in caplog.text
    with pytest.raises(RuntimeError, match="no_such_package_xyz"):
        apply_runtime(enc, SIZE, runtime, strict=True)
    with pytest.raises(ValueError, match="not one of"):
        apply_runtime(enc, SIZE, "tensorrt")


def test_the_real_package_list_names_openvino() -> None:
    """The fallback above is driven by this table: openvino must be checked for, not assumed."""
    import samqa_framework.models.sam.runtime as rt

    assert "openvino" in rt.RUNTIMES and "openvino" in rt._PACKAGES["openvino"]
