"""A bad config value is reported under the full key a user sets, wherever its config node sits: classes name
their own argument, ``utils.hydra`` (instantiate_node, config_node, run_task) puts it under the node."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.hydra import config_node, instantiate_node, located_error, real_key, run_task


def _tiny_sam(cfg):
    return instantiate_node(cfg, "model")  # the student of model=sam at the composed model.image_size


# (primary config, overrides, node instantiated, extra arguments, the key the error must name)
CASES = [
    ("demo", ["tracker.track_buffer=0"], "tracker", None, "tracker.track_buffer"),
    ("demo", ["+tracker.trak_buffer=3"], "tracker", None, "tracker.trak_buffer"),
    ("study", ["detector.conf=1.5"], "detector", None, "detector.conf"),
    ("generate", ["data.num_animals=0"], "data", None, "data.num_animals"),
    # a nested node Hydra builds first: the encoder inside the model
    ("generate", ["+model=sam", "model/encoder=vit_b", "model.encoder.variant=vit_x"], "model", None,
     "model.encoder.variant"),
    # the encoder's img_size is ${model.image_size}: the key a user sets
    ("generate", ["+model=sam", "model.image_size=100"], "model", None, "model.image_size"),
    # annotator.qa is ${qa}: the key a user sets is qa.overlap_thresh
    ("annotate", ["annotator=samqa", "model.image_size=64", "qa.overlap_thresh=1.5"], "annotator", None,
     "qa.overlap_thresh"),
    ("annotate", ["annotator=watershed_unet", "annotator.postprocess.refine=spectral"], "annotator", None,
     "annotator.postprocess.refine"),
    ("annotate", ["annotator=watershed_unet_manual", "annotator.base.postprocess.min_area_ratio=2"], "annotator",
     None, "annotator.base.postprocess.min_area_ratio"),
    ("annotate", ["annotator=sam2_video"], "annotator", None, "annotator.sam2.checkpoint"),
    ("annotate", ["annotator=grounding_dino_manual"], "annotator", None, "annotator.base.model_dir"),
    ("train", ["stage.datamodule.every=0"], "stage.datamodule", None, "stage.datamodule.every"),
    # an argument that is a mapping (the module's optimizer), checked when the module is built
    ("train", ["stage=segmentation", "stage.module.optimizer.lr=0"], "stage.module",
     lambda cfg: {"net": torch.nn.Conv2d(3, 2, 1)}, "stage.module.optimizer.lr"),
    ("train", ["stage=segmentation", "stage.image_size=[1,2,3]"], "stage.module",
     lambda cfg: {"net": torch.nn.Conv2d(3, 2, 1)}, "stage.image_size"),
    # the distillation module instantiates its teacher itself: its argument's key, under the module's node
    ("train", ["stage=distill", "model.image_size=64", "stage.module.teacher.encoder.variant=vit_x"], "stage.module",
     lambda cfg: {"sam": _tiny_sam(cfg)}, "stage.module.teacher.encoder.variant"),
]


@pytest.mark.parametrize(("primary", "overrides", "node", "extra", "key"), CASES,
                         ids=[case[-1] for case in CASES])
def test_an_out_of_range_value_names_its_full_key(compose_cfg, primary: str, overrides: list[str], node: str,
                                                  extra, key: str) -> None:
    cfg = compose_cfg(primary, overrides)
    kwargs = extra(cfg) if extra else {}
    with pytest.raises(ConfigError) as info:
        instantiate_node(cfg, node, **kwargs)
    assert info.value.key == key
    assert str(info.value).startswith(f"config key '{key}': ")
    # what the apps report when a node was instantiated by plain hydra instantiate: the same key
    with pytest.raises(Exception) as raw:
        instantiate(OmegaConf.select(cfg, node), **kwargs)
    assert located_error(raw.value, cfg).key == key


def test_a_renamed_node_reports_its_new_key(compose_cfg) -> None:
    """The same class under another key (two trackers side by side): the message follows the config."""
    tracker = OmegaConf.to_container(compose_cfg("demo").tracker)
    cfg = OmegaConf.create({"trackers": {"paper": tracker, "fast": {**tracker, "track_buffer": 0}}})
    assert instantiate_node(cfg, "trackers.paper").track_buffer == 120
    with pytest.raises(ConfigError, match=r"^config key 'trackers\.fast\.track_buffer': must be a whole number"):
        instantiate_node(cfg, "trackers.fast")


def test_a_value_checked_after_instantiation_names_its_key(compose_cfg, tmp_path: Path) -> None:
    """The importer looks for its source folder when it builds: the caller names the node."""
    cfg = compose_cfg("generate", ["data=motchallenge", f"data.source={tmp_path / 'nowhere'}"])
    builder = instantiate_node(cfg, "data", _convert_="all")
    with pytest.raises(ConfigError, match=r"^config key 'data\.source': folder not found"), config_node(cfg, "data"):
        builder.build(tmp_path / "out")


def test_run_task_reports_the_full_key_in_one_line(compose_cfg, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = compose_cfg("demo", ["tracker.match_thresh=2"])

    @run_task
    def task(cfg):
        return instantiate(cfg.tracker)  # plain instantiate: the task runner still names the key

    with pytest.raises(SystemExit) as info:
        task(cfg)
    assert info.value.code == 1
    assert capsys.readouterr().err.strip() == ("error: config key 'tracker.match_thresh': must be a number in "
                                               "[0, 1], got 2")


def test_real_key_follows_interpolations() -> None:
    cfg = OmegaConf.create({"qa": {"a": 1}, "size": 3, "model": {"enc": {"size": "${size}"}},
                            "ann": {"qa": "${qa}", "rel": "${..size}", "p": {"sam": "${model}"}}})
    assert real_key(cfg, "ann.qa.a") == "qa.a"
    assert real_key(cfg, "ann.rel") == "size"
    assert real_key(cfg, "ann.p.sam.enc.size") == "size"
    assert real_key(cfg, "ann.p.sam.enc.other") == "model.enc.other"  # a key left at its default stays as given
    assert real_key(cfg, "ann.missing.x") == "ann.missing.x"
    assert real_key(cfg.ann, "qa.a") == "qa.a"  # from the root, wherever the node given sits
