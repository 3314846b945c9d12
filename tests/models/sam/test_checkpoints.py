from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import get_rel_pos

from samqa_framework.models.sam.builder import build_sam
from samqa_framework.models.sam.checkpoints import (
    detect_format,
    export_sam_state_dict,
    load_checkpoint,
    read_export_meta,
    read_state_dict,
    sidecar_path,
)
from samqa_framework.models.sam.encoders import SamViTEncoder, TimmEncoder
from samqa_framework.utils.errors import TRUST_KEY, ConfigError, DataFormatError, UntrustedFileError
from samqa_framework.utils.trust import trusting
from tests.utils.helpers_untrusted import write_malicious_checkpoint


def _tiny(model_name: str = "tiny_vit_5m_224", size: int = 64, seed: int = 0):
    torch.manual_seed(seed)
    sam = build_sam(TimmEncoder(model_name, img_size=size))
    with torch.no_grad():  # random everything (BatchNorm stats, biases too) so a mix-up would show
        for tensor in sam.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor))
    return sam


def _tensor_fingerprints(state: dict[str, torch.Tensor]) -> set[tuple]:
    return {(tuple(v.shape), v.numpy().tobytes()) for v in state.values() if v.is_floating_point()}


# ------------------------------------------------------------------------------------------ official SAM


@pytest.fixture(scope="module")
def vit_b_256(sam_vit_b_file: Path):
    sam = build_sam(SamViTEncoder("vit_b", img_size=256))
    load_checkpoint(sam, sam_vit_b_file)  # auto
    return sam


def test_official_vit_b_file_resizes_pos_embed_into_256_model(vit_b_256, sam_vit_b_file: Path) -> None:
    file = torch.load(sam_vit_b_file, weights_only=True)
    got = vit_b_256.image_encoder.pos_embed.detach()
    assert file["image_encoder.pos_embed"].shape == (1, 64, 64, 768)
    assert got.shape == (1, 16, 16, 768)
    expected = F.interpolate(file["image_encoder.pos_embed"].permute(0, 3, 1, 2), size=(16, 16), mode="bicubic",
                             align_corners=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(got, expected)


def test_official_vit_b_file_resizes_global_rel_pos_like_segment_anything(vit_b_256, sam_vit_b_file: Path) -> None:
    file = torch.load(sam_vit_b_file, weights_only=True)
    for i in (2, 5, 8, 11):  # global attention: table length 2 * 64 - 1 in the file, 2 * 16 - 1 here
        for axis in ("h", "w"):
            key = f"blocks.{i}.attn.rel_pos_{axis}"
            table = getattr(vit_b_256.image_encoder.blocks[i].attn, f"rel_pos_{axis}").detach()
            assert file[f"image_encoder.{key}"].shape == (127, 64) and table.shape == (31, 64)
            # segment-anything would resize the 127-long table on the fly to the same values
            torch.testing.assert_close(get_rel_pos(16, 16, table), get_rel_pos(16, 16, file[f"image_encoder.{key}"]))
    # windowed blocks (14 x 14 windows) keep their 27-long tables unchanged
    assert torch.equal(vit_b_256.image_encoder.blocks[0].attn.rel_pos_h.detach(),
                       file["image_encoder.blocks.0.attn.rel_pos_h"])


def test_official_vit_b_file_copies_decoder_prompt_encoder_and_blocks(vit_b_256, sam_vit_b_file: Path) -> None:
    file = torch.load(sam_vit_b_file, weights_only=True)
    state = vit_b_256.state_dict()
    copied = [k for k in file if k.startswith(("prompt_encoder.", "mask_decoder."))]
    assert len(copied) > 50
    for key in copied:
        assert torch.equal(state[key], file[key]), key
    for key in ("image_encoder.blocks.7.mlp.lin1.weight", "image_encoder.patch_embed.proj.weight",
                "image_encoder.neck.2.weight"):
        assert torch.equal(state[key], file[key]), key
    with torch.inference_mode():
        out = vit_b_256.image_encoder(torch.randn(1, 3, 256, 256))
    assert out.shape == (1, 256, 16, 16) and torch.isfinite(out).all()


def test_official_vit_b_file_into_student_names_missing_and_unexpected_keys(sam_vit_b_file: Path) -> None:
    sam = build_sam(TimmEncoder("tiny_vit_5m_224", img_size=64))
    with pytest.raises(ConfigError) as err:
        load_checkpoint(sam, sam_vit_b_file)
    msg = str(err.value)
    assert err.value.key == "checkpoint"
    assert "missing keys (image_encoder.trunk." in msg
    assert "unexpected keys (image_encoder.blocks." in msg
    assert "shape mismatches (image_encoder.neck.0.weight: file (256, 768, 1, 1) vs model (256, 320, 1, 1)" in msg
    assert str(sam_vit_b_file) in msg and "'sam'" in msg


# --------------------------------------------------------------------------------------------- MobileSAM


def test_mobile_sam_file_lands_in_every_tensor_of_timm_tiny_vit(mobile_sam_file: Path) -> None:
    sam = build_sam(TimmEncoder("tiny_vit_5m_224", img_size=256))
    file = torch.load(mobile_sam_file, weights_only=True)
    assert detect_format(file) == "mobile_sam"
    load_checkpoint(sam, mobile_sam_file)  # auto
    state = sam.state_dict()
    # every float tensor of the model holds the values of some tensor of the file (all file tensors are distinct)
    from_file = _tensor_fingerprints(file)
    stray = [k for k, v in state.items() if v.is_floating_point() and (tuple(v.shape), v.numpy().tobytes())
             not in from_file]
    assert stray == []
    # and a few by name, across MobileSAM's naming differences
    pairs = {
        "patch_embed.seq.0.c.weight": "trunk.patch_embed.conv1.conv.weight",
        "patch_embed.seq.2.bn.running_var": "trunk.patch_embed.conv2.bn.running_var",
        "layers.0.blocks.1.conv2.c.weight": "trunk.stages.0.blocks.1.conv2.conv.weight",
        "layers.0.downsample.conv3.bn.weight": "trunk.stages.1.downsample.conv3.bn.weight",
        "layers.2.downsample.conv2.c.weight": "trunk.stages.3.downsample.conv2.conv.weight",
        "layers.2.blocks.5.attn.attention_biases": "trunk.stages.2.blocks.5.attn.attention_biases",
        "layers.3.blocks.1.mlp.fc2.weight": "trunk.stages.3.blocks.1.mlp.fc2.weight",
        "layers.1.blocks.0.local_conv.c.weight": "trunk.stages.1.blocks.0.local_conv.conv.weight",
        "neck.2.weight": "neck.2.weight",
    }
    for theirs, ours in pairs.items():
        assert torch.equal(state[f"image_encoder.{ours}"], file[f"image_encoder.{theirs}"]), theirs
    assert torch.equal(state["mask_decoder.iou_prediction_head.layers.2.weight"],
                       file["mask_decoder.iou_prediction_head.layers.2.weight"])
    with torch.inference_mode():
        out = sam.image_encoder.eval()(torch.randn(1, 3, 256, 256))
    assert out.shape == (1, 256, 16, 16) and torch.isfinite(out).all()


def test_file_without_batchnorm_counters_loads(mobile_sam_file: Path, tmp_path: Path) -> None:
    file = torch.load(mobile_sam_file, weights_only=True)
    stripped = {k: v for k, v in file.items() if not k.endswith("num_batches_tracked")}
    assert len(stripped) < len(file)
    torch.save(stripped, tmp_path / "no_counters.pt")
    sam = build_sam(TimmEncoder("tiny_vit_5m_224", img_size=64))
    load_checkpoint(sam, tmp_path / "no_counters.pt", "mobile_sam")
    assert torch.equal(sam.image_encoder.trunk["patch_embed"].conv1.bn.running_var,
                       file["image_encoder.patch_embed.seq.0.bn.running_var"])


def test_mobile_sam_file_into_wrong_student_reports_shape_mismatches(mobile_sam_file: Path) -> None:
    sam = build_sam(TimmEncoder("tiny_vit_11m_224", img_size=64))
    with pytest.raises(ConfigError) as err:
        load_checkpoint(sam, mobile_sam_file, "mobile_sam")
    msg = str(err.value)
    assert "shape mismatches (image_encoder.neck.0.weight: file (256, 320, 1, 1) vs model (256, 448, 1, 1)" in msg
    assert "image_encoder.trunk.patch_embed.conv1.conv.weight" not in msg  # names matched, only sizes differ
    assert "missing keys" not in msg and "'mobile_sam'" in msg


# ------------------------------------------------------------------------------------- export / round trip


def test_export_then_load_is_bit_exact(tmp_path: Path) -> None:
    src = _tiny(seed=1)
    path = export_sam_state_dict(src, tmp_path / "out" / "student.pth", meta={"epoch": 3, "path": tmp_path})
    dst = _tiny(seed=2)
    assert not torch.equal(dst.state_dict()["mask_decoder.iou_token.weight"],
                           src.state_dict()["mask_decoder.iou_token.weight"])
    load_checkpoint(dst, path)  # auto -> samqa
    a, b = src.state_dict(), dst.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


def test_export_is_a_plain_sam_style_dict_with_sidecar(tmp_path: Path) -> None:
    path = export_sam_state_dict(_tiny(), tmp_path / "student.pth", meta={"epoch": 3})
    plain = torch.load(path, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in plain.values())
    assert {k.split(".")[0] for k in plain} == {"image_encoder", "prompt_encoder", "mask_decoder"}
    assert detect_format(plain) == "samqa"
    meta = read_export_meta(path)
    assert meta == json.loads(sidecar_path(path).read_text())
    assert meta["encoder"] == {"class": "TimmEncoder", "img_size": 64, "model_name": "tiny_vit_5m_224"}
    assert meta["meta"] == {"epoch": 3}
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_export_of_vit_b_loads_with_segment_anythings_own_builder(tmp_path: Path) -> None:
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    ours = build_sam(SamViTEncoder("vit_b", img_size=1024))
    path = export_sam_state_dict(ours, tmp_path / "vit_b.pth")
    theirs = sam_model_registry["vit_b"](checkpoint=str(path))  # strict load_state_dict
    assert torch.equal(theirs.image_encoder.pos_embed, ours.image_encoder.pos_embed)


def test_export_metadata_mismatch_names_the_encoder(tmp_path: Path) -> None:
    path = export_sam_state_dict(_tiny("tiny_vit_5m_224"), tmp_path / "student.pth")
    with pytest.raises(ConfigError, match="model_name='tiny_vit_5m_224'") as err:
        load_checkpoint(_tiny("tiny_vit_11m_224"), path)
    assert err.value.key == "checkpoint"


def test_lightning_checkpoint_with_student_prefix(tmp_path: Path) -> None:
    src = _tiny(seed=3)
    teacher_like = {f"teacher.{k}": torch.zeros(1) for k in list(src.state_dict())[:3]}
    ckpt = {"epoch": 2, "global_step": 10, "state_dict": {**teacher_like,
                                                         **{f"student.{k}": v for k, v in src.state_dict().items()}}}
    torch.save(ckpt, tmp_path / "last.ckpt")
    dst = _tiny(seed=4)
    load_checkpoint(dst, tmp_path / "last.ckpt")
    assert all(torch.equal(v, dst.state_dict()[k]) for k, v in src.state_dict().items())


@pytest.mark.parametrize("prefix", ["model.", "sam.", "module.student."])
def test_lightning_checkpoint_with_other_prefixes(tmp_path: Path, prefix: str) -> None:
    src = _tiny(seed=5)
    torch.save({"state_dict": {f"{prefix}{k}": v for k, v in src.state_dict().items()}}, tmp_path / "m.ckpt")
    assert read_state_dict(tmp_path / "m.ckpt").keys() == src.state_dict().keys()


# ------------------------------------------------------------------------------------------------ errors


def test_missing_file_names_the_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found") as err:
        load_checkpoint(_tiny(), tmp_path / "nope.pth")
    assert err.value.key == "checkpoint" and "nope.pth" in str(err.value)


def test_unreadable_file_is_a_data_format_error(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(DataFormatError) as err:
        load_checkpoint(_tiny(), bad)
    assert err.value.path == str(bad)


def test_non_tensor_entries_are_a_data_format_error(tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    torch.save({"image_encoder.x": "not a tensor"}, path)
    with pytest.raises(DataFormatError, match="not named tensors"):
        load_checkpoint(_tiny(), path)


def test_plain_state_dict_of_other_student_lists_shape_mismatches(tmp_path: Path) -> None:
    path = tmp_path / "no_sidecar.pth"
    torch.save(_tiny("tiny_vit_5m_224").state_dict(), path)
    with pytest.raises(ConfigError) as err:
        load_checkpoint(_tiny("tiny_vit_11m_224"), path)
    msg = str(err.value)
    assert "shape mismatches" in msg and "vs model" in msg and "missing keys" not in msg


def test_unknown_format_names_checkpoint_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_checkpoint(_tiny(), tmp_path / "x.pth", "onnx")
    assert err.value.key == "checkpoint_format"


def test_a_lightning_checkpoint_that_runs_code_is_refused_unless_trusted(tmp_path: Path) -> None:
    src = _tiny(seed=6)
    marker = tmp_path / "MARKER"
    evil = write_malicious_checkpoint(tmp_path / "evil.ckpt", marker, key="hyper_parameters",
                                      payload={"state_dict": {f"student.{k}": v for k, v in src.state_dict().items()}})
    with pytest.raises(UntrustedFileError, match=rf"evil\.ckpt: .*builtins\.exec.*{TRUST_KEY}=true"):
        load_checkpoint(_tiny(seed=7), evil)  # the .ckpt is no longer unpickled in full after the safe load fails
    assert not marker.exists()
    dst = _tiny(seed=7)
    with trusting(True):  # the user's explicit choice: then it loads as before, its code runs
        load_checkpoint(dst, evil)
    assert marker.exists() and all(torch.equal(v, dst.state_dict()[k]) for k, v in src.state_dict().items())
