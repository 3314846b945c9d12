from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sam2.modeling.sam2_base import SAM2Base
from sam2.sam2_video_predictor import SAM2VideoPredictor

from samqa_framework.models.sam2.build import available_configs, build_sam2_model, load_sam2_checkpoint
from samqa_framework.utils.errors import TRUST_KEY, ConfigError, DataFormatError, UntrustedFileError
from tests.models.helpers_checkpoints import SAM2_CONFIG, SAM2_TEST_SIZE
from tests.utils.helpers_untrusted import write_malicious_checkpoint

SIZE = SAM2_TEST_SIZE


def _same_weights(a: torch.nn.Module, b: dict[str, torch.Tensor]) -> bool:
    sa = a.state_dict()
    return sa.keys() == b.keys() and all(torch.equal(sa[k], b[k]) for k in sa)


def test_official_format_loads_back_strictly(sam2_checkpoint: Path) -> None:
    saved = torch.load(sam2_checkpoint, weights_only=True)
    assert set(saved) == {"model"}  # the official layout
    torch.manual_seed(123)  # another random init: only the file can make the weights equal
    model = build_sam2_model(SAM2_CONFIG, sam2_checkpoint, image_size=SIZE)
    assert type(model) is SAM2Base and not model.training and model.image_size == SIZE
    assert _same_weights(model, saved["model"])
    random = build_sam2_model(SAM2_CONFIG, None, image_size=SIZE, allow_random=True)
    assert not _same_weights(random, saved["model"])


def test_video_variant_and_other_image_size_load_the_same_file(sam2_checkpoint: Path) -> None:
    model = build_sam2_model(SAM2_CONFIG, sam2_checkpoint, image_size=2 * SIZE, video=True)
    assert isinstance(model, SAM2VideoPredictor) and model.image_size == 2 * SIZE
    assert _same_weights(model, torch.load(sam2_checkpoint, weights_only=True)["model"])
    # no compiled CUDA kernel on a CPU: hole filling off instead of a warning per frame
    assert model.fill_hole_area == 0


def test_checkpoint_unset_or_missing_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'checkpoint'.*sam2\.1_hiera_tiny\.pt") as err:
        build_sam2_model(SAM2_CONFIG, None, image_size=SIZE)
    assert err.value.key == "checkpoint"  # the argument; under a config: e.g. annotator.sam2.checkpoint
    missing = tmp_path / "nope" / "sam2.1_hiera_tiny.pt"
    with pytest.raises(ConfigError, match="not found") as err:
        build_sam2_model(SAM2_CONFIG, missing, image_size=SIZE)
    assert err.value.key == "checkpoint" and str(missing) in str(err.value)


def test_sam2_0_file_in_a_sam2_1_model_names_the_keys_and_the_file(tmp_path: Path, sam2_checkpoint: Path) -> None:
    # SAM 2.0's tiny model lacks 2.1's spatial no-object embedding and temporal object-pointer projection.
    old = build_sam2_model("configs/sam2/sam2_hiera_t.yaml", None, image_size=SIZE, allow_random=True)
    path = tmp_path / "sam2_hiera_tiny.pt"
    torch.save({"model": old.state_dict()}, path)
    with pytest.raises(ConfigError, match=r"missing keys \(.*no_obj_embed_spatial") as err:
        build_sam2_model(SAM2_CONFIG, path, image_size=SIZE)
    assert err.value.key == "checkpoint" and str(path) in str(err.value)
    assert "obj_ptr_tpos_proj" in str(err.value)
    # and the other way round: unexpected keys
    with pytest.raises(ConfigError, match=r"unexpected keys \(.*no_obj_embed_spatial"):
        load_sam2_checkpoint(old, sam2_checkpoint, "configs/sam2/sam2_hiera_t.yaml")


def test_wrong_shapes_and_unreadable_files(tmp_path: Path, sam2_checkpoint: Path) -> None:
    state = torch.load(sam2_checkpoint, weights_only=True)["model"]
    state["no_mem_embed"] = torch.zeros(1, 1, 7)
    bad = tmp_path / "bad.pt"
    torch.save({"model": state}, bad)
    with pytest.raises(ConfigError, match=r"1 shape mismatches \(no_mem_embed: file \(1, 1, 7\) vs model"):
        build_sam2_model(SAM2_CONFIG, bad, image_size=SIZE)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DataFormatError, match=r"junk\.pt"):
        build_sam2_model(SAM2_CONFIG, junk, image_size=SIZE)
    listed = tmp_path / "list.pt"
    torch.save([1, 2], listed)
    with pytest.raises(DataFormatError, match=r"expected a SAM 2 checkpoint"):
        build_sam2_model(SAM2_CONFIG, listed, image_size=SIZE)


def test_bad_config_and_image_size() -> None:
    assert SAM2_CONFIG in available_configs() and "configs/sam2/sam2_hiera_l.yaml" in available_configs()
    with pytest.raises(ConfigError, match=r"'config'.*sam2\.1_hiera_t\.yaml") as err:
        build_sam2_model("configs/sam2.1/sam2.1_hiera_xxl.yaml", None, image_size=SIZE, allow_random=True)
    assert err.value.key == "config"
    for size in (0, 48, 100):
        with pytest.raises(ConfigError, match="multiple of 32") as err:
            build_sam2_model(SAM2_CONFIG, None, image_size=size, allow_random=True)
        assert err.value.key == "image_size"


def test_a_checkpoint_that_runs_code_is_refused(sam2_checkpoint: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    evil = write_malicious_checkpoint(tmp_path / "sam2_evil.pt", marker,
                                      payload=torch.load(sam2_checkpoint, weights_only=True))
    with pytest.raises(UntrustedFileError, match=rf"sam2_evil\.pt: .*{TRUST_KEY}=true"):
        build_sam2_model(SAM2_CONFIG, evil, image_size=SIZE)
    assert not marker.exists()


def test_a_config_outside_the_sam2_package_is_refused(tmp_path: Path) -> None:
    """Hydra would follow ../ out of the package and instantiate whatever _target_ the file names."""
    (tmp_path / "evil.yaml").write_text("# @package _global_\nmodel:\n  _target_: pathlib.Path.touch\n")
    escape = "../" * 30 + str(tmp_path / "evil").lstrip("/")  # from sam2's package folder up to / and down again
    with pytest.raises(ConfigError, match=r"is not a model config of the sam2 package") as err:
        build_sam2_model(escape, None, image_size=SIZE, allow_random=True)
    assert err.value.key == "config"
