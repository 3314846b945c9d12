"""Every config of every group composes and instantiates (the lightning-hydra-template's safety net)."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.hydra import CONFIG_DIR, instantiate_node

GROUPS = ["data", "model", "annotator", "qa", "prompts", "detector", "tracker", "trainer", "logger", "callbacks",
          "paths", "experiment", "recipe", "postprocess", "extras"]
PRIMARY = {"generate": ["paths", "data", "extras"], "evaluate": ["paths", "logger"],
           "annotate": ["paths", "data", "model", "qa", "prompts", "annotator", "logger"],
           "study": ["paths", "data", "model", "qa", "prompts", "annotator", "detector", "tracker", "logger",
                     "experiment"],
           "train": ["paths", "data", "model", "trainer", "logger", "callbacks", "stage", "recipe"]}
# Groups whose configs refer to other groups (${model}, ${qa}, ${prompts}): composed in the app that uses them.
# Presets are composed in the one app that lists their group: experiments (study setups) in samqa-study,
# recipes (training presets) in samqa-train.
COMPOSED_IN = {"annotator": "annotate", "prompts": "annotate", "experiment": "study", "recipe": "train"}
PRESETS = ("experiment", "recipe")
# Configs that need a checkpoint or model folder: instantiating them without one names the key to set.
NEEDS_CHECKPOINT = {("model", "dinov2_linear"): r"model\.backbone_path",
                    ("annotator", "watershed_unet"): r"annotator\.checkpoint",
                    ("annotator", "watershed_deeplabv3"): r"annotator\.checkpoint",
                    ("annotator", "watershed_dinov2"): r"annotator\.checkpoint",
                    ("annotator", "watershed_unet_manual"): r"annotator\.base\.checkpoint",
                    ("annotator", "sam2_video"): r"annotator\.sam2\.checkpoint",
                    ("annotator", "sam2_video_30"): r"annotator\.sam2\.checkpoint",
                    ("annotator", "samqa_sam2"): r"annotator\.sam2\.checkpoint",
                    ("annotator", "grounding_dino"): r"'annotator\.model_dir'",
                    ("annotator", "grounding_dino_manual"): r"'annotator\.base\.model_dir'"}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def test_every_expected_group_has_configs() -> None:
    for group in [*GROUPS, "hydra/launcher", "data/scene", "model/encoder"]:
        assert options(group), f"conf/{group}/ has no configs"


def _compose_with(compose_cfg, group: str, option: str, extra: list[str] | None = None) -> DictConfig:
    primary = COMPOSED_IN.get(group, "generate")
    prefix = "" if group in PRIMARY[primary] else "+"
    small = ["model.image_size=64"] if primary in ("annotate", "study") and group not in PRESETS else []
    return compose_cfg(primary, [f"{prefix}{group}={option}", *small, *(extra or [])])


def data_overrides(option: str, tmp_path: Path) -> list[str]:
    """What a data config needs besides its name: your own data's source (and, unlabelled, the animal count)."""
    if option == "motchallenge":
        return [f"data.source={tmp_path}"]
    if option == "video":
        video = tmp_path / "clip.mp4"
        if not video.is_file():
            writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 24))
            for i in range(4):
                writer.write(np.full((24, 32, 3), 40 * i, np.uint8))
            writer.release()
        return [f"data.source={video}", "data.num_animals=2"]
    if option == "labelled_video":
        coco = tmp_path / "clip.json"
        coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 32, "height": 24,
                                                "frame_id": 0}], "categories": [{"id": 1, "name": "rat"}],
                                    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 8, 6],
                                                     "track_id": 1, "area": 48, "iscrowd": 0}]}))
        return [*data_overrides("video", tmp_path)[:1], f"data.labels={coco}", "data.format=coco"]
    return []


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_config_composes_and_instantiates(compose_cfg, tmp_path: Path, group: str, option: str) -> None:
    extra = data_overrides(option, tmp_path) if group == "data" else []
    cfg = _compose_with(compose_cfg, group, option, extra)
    node = cfg[group] if group not in PRESETS else OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    container = OmegaConf.to_container(node, resolve=True)  # every interpolation resolves
    assert container is not None
    if group in PRESETS:
        assert "sizes" not in cfg.data or cfg.data.size in cfg.data.sizes
        return
    if group == "trainer" and cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        with pytest.raises(Exception, match=r"(?i)gpu|cuda"):
            instantiate(node)
        return
    if group in ("logger", "callbacks"):
        objs = {k: instantiate(v) for k, v in node.items()} if node else {}
        assert all(type(o).__name__ != "DictConfig" for o in objs.values())
        return
    if (group, option) in NEEDS_CHECKPOINT:
        with pytest.raises(ConfigError) as info:
            instantiate_node(cfg, group)
        assert re.search(NEEDS_CHECKPOINT[group, option], str(info.value))
        return
    obj = instantiate(node, _convert_="all")
    if "_target_" in node:  # a real object was built, not the config echoed back
        assert obj is not None and not isinstance(obj, dict | DictConfig)
        if group == "model":
            assert isinstance(obj, torch.nn.Module) and sum(p.numel() for p in obj.parameters()) > 0
    else:  # plain-value groups (qa, paths): every value resolves
        assert isinstance(obj, dict) and obj


@pytest.mark.parametrize("primary", ["generate", "evaluate", "train", "annotate", "study", "demo"])
@pytest.mark.parametrize("data", options("data"))
def test_every_primary_config_resolves_with_every_data_set(compose_cfg, tmp_path: Path, primary: str,
                                                           data: str) -> None:
    """One definition of where a data set lives (paths.dataset_dir), resolvable for every data config in every app:
    imported data sets have no size, your own video's is named after its file."""
    overrides = [f"data={data}", *data_overrides(data, tmp_path)]
    if primary == "evaluate":
        overrides.append(f"pred_dir={tmp_path}")
    cfg = compose_cfg(primary, overrides)
    resolved = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    size = cfg.data.get("size") or "imported"
    assert resolved["paths"]["dataset_dir"] == f"{cfg.paths.data_dir}/{cfg.data.name}-{size}"
    assert "dataset_dir" not in resolved  # no app defines its own
    if primary == "train":
        assert resolved["stage"]["datamodule"]["root"] == resolved["paths"]["dataset_dir"]
    if data in ("video", "labelled_video"):
        assert cfg.data.name == "clip"
    assert resolved["extras"] == {"malloc": "reuse"}  # every app keeps a training step's memory for the next


def test_evaluate_config_composes(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("evaluate", [f"gt_dir={tmp_path}", f"pred_dir={tmp_path}"])
    assert cfg.task_name == "evaluate"
    assert cfg.logger.wandb.offline is True
    assert cfg.logger.wandb.group.startswith("evaluate-")


def test_unknown_key_is_refused(compose_cfg) -> None:
    with pytest.raises(Exception, match="colr"):
        compose_cfg("generate", ["data.colr=1"])


@pytest.mark.parametrize("launcher", options("hydra/launcher"))
def test_launcher_configs_instantiate(compose_cfg, launcher: str) -> None:
    if launcher == "slurm":
        pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]'")
    cfg = compose_cfg("generate", [f"hydra/launcher={launcher}"])
    target = cfg.hydra.launcher._target_
    assert ("BasicLauncher" in target) if launcher == "local" else ("SlurmLauncher" in target)
    # Hydra's target policy refuses hydra._internal targets in instantiate(); Hydra builds launchers itself
    # from the same node, so build the class with the node's parameters the same way.
    module, name = target.rsplit(".", 1)
    params = {k: v for k, v in OmegaConf.to_container(cfg.hydra.launcher, resolve=False).items() if k != "_target_"}
    launcher_obj = getattr(importlib.import_module(module), name)(**params)
    assert type(launcher_obj).__name__ == name


def test_run_dirs_follow_task_layout(compose_cfg) -> None:
    cfg = compose_cfg("generate")
    run_dir = OmegaConf.to_container(cfg.hydra, resolve=False)["run"]["dir"]
    sweep = OmegaConf.to_container(cfg.hydra, resolve=False)["sweep"]
    assert run_dir.endswith("/run")  # the fixture's override; the default is checked below
    default = (CONFIG_DIR / "hydra" / "default.yaml").read_text()
    assert "${paths.log_dir}/${task_name}/${now:" in default
    assert sweep["dir"] == "${paths.log_dir}/${task_name}/multirun/${now:%Y-%m-%d_%H-%M-%S}"
    assert sweep["subdir"] == "${hydra.job.num}"


@pytest.mark.parametrize("encoder", options("model/encoder"))
def test_every_sam_encoder_config_builds_a_sam(compose_cfg, encoder: str) -> None:
    cfg = compose_cfg("generate", ["+model=sam", f"model/encoder={encoder}", "model.image_size=64"])
    # ViT-L/H take seconds to initialise on a CPU: build them on the meta device (shapes only)
    device = "meta" if encoder in ("vit_l", "vit_h") else "cpu"
    with torch.device(device):
        sam = instantiate(cfg.model)
    assert type(sam).__name__ == "Sam" and sam.image_encoder.img_size == 64
    if device == "cpu":
        with torch.no_grad():
            emb = sam.image_encoder(torch.zeros(1, 3, 64, 64))
        assert tuple(emb.shape) == (1, 256, 4, 4)


def test_image_size_must_be_a_multiple_of_16(compose_cfg) -> None:
    cfg = compose_cfg("generate", ["+model=sam", "model.image_size=250"])
    with pytest.raises(ConfigError, match=r"config key 'model\.image_size': must be a multiple of 16"):
        instantiate_node(cfg, "model")


def test_every_annotator_has_a_study_method_entry(compose_cfg) -> None:
    """Table 2 names each method and knows what it needs: no annotator config may be missing from `methods`."""
    cfg = compose_cfg("study")
    assert set(options("annotator")) <= set(cfg.methods), sorted(set(options("annotator")) - set(cfg.methods))
    for name, method in cfg.methods.items():
        for model in (method.get("needs") or {}):
            assert model in cfg.study.models, f"methods.{name}.needs names unknown model {model}"


@pytest.mark.parametrize("primary,override,error", [
    ("study", "experiment=quick_finetune_rats", r"experiment/quick_finetune_rats"),   # a recipe is not a study
    ("train", "recipe=quick_all", r"recipe/quick_all"),                             # nor a study setup a recipe
    ("train", "experiment=paper_rats", r"Could not override 'experiment'"),         # samqa-train has no experiments
    ("generate", "experiment=paper_rats", r"Could not override 'experiment'"),
    ("annotate", "recipe=quick_finetune_rats", r"Could not override 'recipe'"),
])
def test_a_preset_composes_only_into_its_own_app(compose_cfg, primary: str, override: str, error: str) -> None:
    with pytest.raises(ConfigCompositionException, match=error):
        compose_cfg(primary, [override])


def test_qa_paper_and_each_ablation_switch_one_addition_off(compose_cfg) -> None:
    default = OmegaConf.to_container(compose_cfg("annotate", ["model.image_size=64"]).qa, resolve=True)
    paper = OmegaConf.to_container(compose_cfg("annotate", ["qa=paper", "model.image_size=64"]).qa, resolve=True)
    assert {k for k in default if paper[k] != default[k]} == {
        "box_margin", "refine_passes", "recheck_missing", "separate", "probe_lost", "recovery_reassociate"}
    assert paper["recovery_reassociate"] is True and paper["box_margin"] == 0 and not paper["separate"]
    ablations = sorted(p.stem for p in (CONFIG_DIR / "qa" / "ablation").glob("*.yaml"))
    assert len(ablations) == 6
    changed = set()
    for name in ablations:
        cfg = compose_cfg("annotate", [f"qa=ablation/{name}", "model.image_size=64"])
        qa = OmegaConf.to_container(cfg.qa, resolve=True)
        (key,) = [k for k in default if qa[k] != default[k]]  # exactly one setting differs from qa=default
        assert qa[key] == paper[key]  # ... and it is set as in the paper's loop
        changed.add(key)
        annotator = instantiate_node(cfg, "annotator", _convert_="all")
        assert type(annotator).__name__ == "SamQaAnnotator"
    assert changed == {k for k in default if paper[k] != default[k]}  # every addition has its row
    sweep = compose_cfg("study", ["experiment=qa_ablation"]).hydra.sweeper.params
    assert set(sweep.qa.split(",")) == {"default", "paper", *(f"ablation/{n}" for n in ablations)}


@pytest.mark.parametrize("experiment", options("experiment"))
def test_study_budgets_are_steps_or_epochs_never_wall_clock(compose_cfg, experiment: str) -> None:
    cfg = compose_cfg("study", [f"experiment={experiment}"])
    for name, spec in cfg.study.models.items():
        assert not any("max_time" in str(o) for o in spec.overrides), (experiment, name)
        train = compose_cfg("train", [str(o) for o in spec.overrides if "backbone_path" not in str(o)
                                      and "teacher.checkpoint" not in str(o)])
        assert train.trainer.get("max_time") is None, (experiment, name)
        assert train.trainer.max_epochs > 0 or train.trainer.get("max_steps", -1) > 0, (experiment, name)
    assert cfg.detector.iterations or cfg.detector.epochs


def test_detector_budget_per_data_set_shared_by_every_study_preset(compose_cfg) -> None:
    """make study, quick_all and the ablation train a data set's detectors with the same budget (so they share cached
    stages), the mice's larger than the rats'; an explicit override still wins."""
    budgets = compose_cfg("study").study.detector_iterations
    assert budgets.synthetic_mice > budgets.synthetic_rats
    for data, want in budgets.items():
        for experiment in ([], ["experiment=quick_all"], ["experiment=qa_ablation"]):
            assert compose_cfg("study", [f"data={data}", *experiment]).detector.iterations == want, (data, experiment)
    assert compose_cfg("study", ["data=synthetic_mice", "detector.iterations=50"]).detector.iterations == 50
    assert compose_cfg("study", ["data=sleap_clip"]).detector.iterations == 400  # not listed: the default


@pytest.mark.parametrize("preset", [f"recipe={r}" for r in options("recipe")]
                         + [f"stage={s}" for s in options("stage")])
def test_training_presets_have_no_wall_clock_budget(compose_cfg, preset: str) -> None:
    assert compose_cfg("train", [preset]).trainer.get("max_time") is None


@pytest.mark.parametrize("stage", ["finetune", "distill", "distill_quick", "segmentation"])
def test_every_training_stage_caches_decoded_frames_in_the_shared_data_folder(tmp_path: Path, stage: str) -> None:
    """Without the test fixture's redirection (``compose_cfg``): the default is one folder beside the data sets."""
    from samqa_framework.api import compose

    cfg = compose("train", [f"stage={stage}"], output_dir=tmp_path)
    assert cfg.stage.datamodule.frame_cache_dir == f"{cfg.paths.data_dir}/cache/frames" == cfg.paths.frame_cache_dir
    cfg = compose("train", [f"stage={stage}", "paths.frame_cache_dir=null"], output_dir=tmp_path)
    assert cfg.stage.datamodule.frame_cache_dir is None  # off


def test_the_worked_example_trains_the_student_on_20_labelled_frames_and_sweeps_manual_and_samqa(
        compose_cfg, sleap_clip: Path, tmp_path: Path) -> None:
    """experiment=sleap_clip_samqa (README, "Your own video: the worked example"): the real clip, SAM-QA with the human
    labels answering (oracle), its student fine-tuned on every 38th of the 750 training frames (20 frames, their boxes:
    SLEAP has no masks) for a step budget, the manual and SAM-QA rows side by side in one multirun."""
    from samqa_framework.data.datamodules import _box_labels
    from samqa_framework.data.sequence import DatasetManifest
    from samqa_framework.study.pipeline import StudyJob

    cfg = compose_cfg("study", ["experiment=sleap_clip_samqa", f"paths.dataset_dir={tmp_path}/clip"])
    assert cfg.data._target_.endswith("SleapImporter") and dict(cfg.data.splits) == {"train": [0, 750],
                                                                                    "eval": [750, 1500]}
    assert cfg.annotator._target_.endswith("SamQaAnnotator") and cfg.prompts._target_.endswith("OraclePrompts")
    assert cfg.hydra.sweeper.params.annotator.split(",") == ["manual", "samqa"]
    # the manual row is experiment=sleap_clip's: the same detector, budget included
    assert cfg.detector == compose_cfg("study", ["experiment=sleap_clip"]).detector and cfg.detector.iterations
    train = StudyJob(cfg).train_config(cfg.study.models.sam_finetune, {})
    assert train.stage.name == "finetune" and train.stage.module.supervision == "auto"
    assert train.trainer.max_steps > 0 and train.trainer.max_epochs == -1
    assert train.model.image_size == cfg.model.image_size  # the annotator loads the student at its own size
    root = Path(cfg.paths.dataset_dir)
    instantiate(cfg.data, _convert_="all", slp=str(sleap_clip / "clip.slp")).build(root)
    seqs = DatasetManifest.read(root).sequences(root, "train")
    refs, labels = _box_labels(seqs, train.stage.datamodule.every)
    assert len(refs) == 20 and refs[0] == (0, 0) and refs[-1][1] >= 700  # evenly over frames 1-750
    assert all(r is None for lab in labels for r in lab["rles"]) and sum(len(lab["ids"]) for lab in labels) == 40
