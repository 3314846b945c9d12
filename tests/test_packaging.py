"""The wheel as a user gets it: built from the checkout, installed into a fresh venv, run from an empty folder.

The fresh venv sees the dependencies already installed for the tests (a ``.pth`` line naming this interpreter's
site-packages) instead of downloading them again; ``.pth`` files inside that folder are not processed, so an
editable install of the checkout living there is not importable, and the test checks that the package imported is
the wheel's copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What the build reads (pyproject.toml names README.md as the long description).
BUILD_INPUTS = ("pyproject.toml", "README.md", "src", "conf")


def _files(root: Path) -> set[Path]:
    """Every file under ``root`` except bytecode caches (Python may write those next to any module it imports)."""
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _run(cmd: list[str | Path], cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert proc.returncode == 0, f"{cmd[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the checkout (a build writes build/ and *.egg-info next to its sources)."""
    src = tmp_path_factory.mktemp("sdist")
    for name in BUILD_INPUTS:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", out, src],
         cwd=src, env=dict(os.environ))
    (whl,) = out.glob("samqa_framework-*.whl")
    return whl


def test_wheel_carries_every_config_and_py_typed(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted((REPO / "conf").rglob("*.yaml"))
    assert configs and (REPO / "conf" / "study.yaml") in configs
    missing = [str(p.relative_to(REPO)) for p in configs
               if f"samqa_framework/conf/{p.relative_to(REPO / 'conf').as_posix()}" not in names]
    assert not missing, f"configs missing from the wheel: {missing}"
    assert "samqa_framework/py.typed" in names
    modules = sorted((REPO / "src").rglob("*.py"))
    missing = [str(p) for p in modules if p.relative_to(REPO / "src").as_posix() not in names]
    assert not missing, f"modules missing from the wheel: {missing}"


def test_installed_wheel_generates_and_evaluates_from_an_empty_folder(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False, symlinks=True)
    py = env_dir / "bin" / "python"
    site_dir = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path,
                         env=dict(os.environ)).stdout.strip())
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site_dir / "_samqa_test_deps.pth").write_text("".join(f"{d}\n" for d in deps))

    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "SAMQA_ROOT", "VIRTUAL_ENV", "WANDB_DIR"}}
    env.update(WANDB_MODE="offline", PYTHONUNBUFFERED="1")
    _run([py, "-m", "pip", "install", "--no-deps", "--no-index", wheel], cwd=tmp_path, env=env)
    installed = Path(_run([py, "-c", "import samqa_framework; print(samqa_framework.__file__)"], cwd=tmp_path,
                          env=env).stdout.strip())
    assert installed.is_relative_to(site_dir), f"the wheel's package is not the one imported: {installed}"

    venv_before = _files(env_dir)
    checkout_outputs = REPO / "outputs"
    outputs_before = _files(checkout_outputs) if checkout_outputs.is_dir() else set()
    work = tmp_path / "work"
    work.mkdir()

    _run([env_dir / "bin" / "samqa-generate", "data=synthetic_rats", "data.size=tiny"], cwd=work, env=env)
    assert _files(env_dir) == venv_before, "the run wrote into the venv"
    assert (work / "outputs" / "generate").is_dir(), "the run did not land in ./outputs"
    (generated,) = (work / "outputs" / "generate").iterdir()
    seq = "synthetic_rats-eval1"
    pred = tmp_path / "pred"
    pred.mkdir()
    shutil.copy(generated / seq / "gt" / "gt.txt", pred / f"{seq}.txt")  # the ground truth as a perfect tracker
    _run([env_dir / "bin" / "samqa-evaluate", f"gt_dir={generated}", f"pred_dir={pred}", f"sequences=[{seq}]"],
         cwd=work, env=env)

    (run,) = (work / "outputs" / "evaluate").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics[seq]["IDF1"] == pytest.approx(100.0)  # percent
    assert sorted(p.name for p in work.iterdir()) == ["outputs"]
    assert _files(env_dir) == venv_before, "the run wrote into the venv"
    assert (_files(checkout_outputs) if checkout_outputs.is_dir() else set()) == outputs_before, \
        "a run wrote into the checkout"


def test_constraints_pin_every_declared_dependency_within_its_range() -> None:
    """make venv installs constraints.txt's exact versions: a dependency added to pyproject.toml without a pin there
    (make lock) would float, and a release between two installs would change what the same config trains."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for n, line in enumerate((REPO / "constraints.txt").read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt:{n}: not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = version.strip()
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    declared = [*project["dependencies"], *(r for extra in ("dev", "fast") for r in extras[extra])]
    for text in declared:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} (pyproject.toml) has no pin in constraints.txt: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt: {req.name}=={pins[name]} is outside pyproject.toml's {req.specifier}"
