"""samqa-annotate with the model-based methods (random-weight SAM 2 and a tiny random Grounding DINO): each runs
from the command line with its model given, and without it stops with one line naming the key to set.
(Every CLI process pays ~10 s of imports, so the variants samqa_sam2 and grounding_dino_manual are built from their
composed configs in-process, in tests/annotate/test_sam2_video.py and test_grounding_dino.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import run_cli
from tests.models.helpers_checkpoints import SAM2_TEST_SIZE, write_random_sam2_checkpoint, write_tiny_grounding_dino

COMMON = ["data.size=tiny", "max_frames=6", "logger=csv", "progress=false"]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the CLI processes' torch threads (run_cli passes os.environ on)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project root for the module: the tiny data set is built by the first run and reused."""
    return tmp_path_factory.mktemp("annotate_models")


@pytest.fixture(scope="module")
def sam2_checkpoint(root: Path) -> Path:
    return write_random_sam2_checkpoint(root / "models" / "sam2_random.pt", SAM2_TEST_SIZE)


@pytest.fixture(scope="module")
def gdino_dir(root: Path) -> Path:
    return write_tiny_grounding_dino(root / "models" / "grounding-dino-tiny-random")


@pytest.mark.parametrize(("annotator", "method"), [("sam2_video", "sam2_video/15"),
                                                   ("grounding_dino", "grounding_dino")])
def test_runs_with_its_model(request: pytest.FixtureRequest, root: Path, annotator: str, method: str) -> None:
    if annotator == "sam2_video":
        model = [f"annotator.sam2.checkpoint={request.getfixturevalue('sam2_checkpoint')}",
                 f"annotator.sam2.image_size={SAM2_TEST_SIZE}"]
    else:
        model = [f"annotator.model_dir={request.getfixturevalue('gdino_dir')}"]
    out = root / "labels" / annotator
    result = run_cli("samqa-annotate", f"annotator={annotator}", *model, *COMMON, f"out_dir={out}", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"| {method} | 6 |" in result.stdout
    assert result.stdout.strip().endswith(f"labels: {out}")
    assert len((out / "synthetic_rats-train" / "labels.jsonl").read_text().splitlines()) == 6
    assert "propagate in video" not in result.stderr  # sam2's own per-chunk progress bars stay off


@pytest.mark.parametrize(("annotator", "key"), [("sam2_video", "annotator.sam2.checkpoint"),
                                                ("grounding_dino", "annotator.model_dir")])
def test_without_its_model_names_the_key(root: Path, annotator: str, key: str) -> None:
    result = run_cli("samqa-annotate", f"annotator={annotator}", *COMMON, f"out_dir={root}/missing/{annotator}",
                     cwd=root)
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"config key '{key}'" in result.stderr and "Traceback" not in result.stderr
