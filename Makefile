# One place that knows how to build the environment; README's quick start and CI call these targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export WANDB_MODE ?= offline
export YOLO_OFFLINE := 1
export YOLO_AUTOINSTALL := false

.PHONY: venv study demo test test-slow test-all bench bench-startup lint lock clean

venv: $(STAMP)

# torch first (local wheels), then sam2 without build isolation (its isolated build would pull a second
# multi-GB torch and its CUDA extension is optional), then the project; finally make sure exactly one cv2
# build is present: ultralytics and trackeval pull in opencv-python, and a stray headless copy shares its
# cv2 folder.
# Every install takes constraints.txt's exact versions: a library released between two installs (it happens within
# a day) would otherwise change what the same config trains.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1
	SAM2_BUILD_CUDA=0 SAM2_BUILD_ALLOW_ERRORS=1 $(PIP) install -q -c constraints.txt --no-build-isolation sam2
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	$(PY) scripts/fix_opencv.py
	touch $(STAMP)

# The main job: the quick study (every method of conf/study.yaml's sweep on synthetic_rats), Table 2 printed last.
study: $(STAMP)
	$(VENV)/bin/samqa-study -m

# ByteTrack on simulated detectors of growing noise (how the metrics respond, without any training).
demo: $(STAMP)
	$(VENV)/bin/samqa-demo

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

bench: $(STAMP)
	$(PY) scripts/bench_io.py --out outputs/bench_io.json

# --help and one tab completion of every samqa-* command (median of 3 runs; fails over 3 s).
bench-startup: $(STAMP)
	$(PY) scripts/bench_startup.py --out outputs/bench_startup.json --importtime 6

# ruff; the import layers of .importlinter (cli -> api -> study -> stages -> data | models -> utils); deptry: the
# package imports exactly what it declares, tests and scripts nothing undeclared (dev extra included).
# pyproject.toml's [tool.deptry] says which dependencies are used without an import.
# constraints.txt from the working .venv (after changing a dependency in pyproject.toml and checking the study).
lock: $(STAMP)
	{ sed -n '1,2p' constraints.txt; $(PIP) freeze --exclude-editable; } > constraints.txt.tmp && mv constraints.txt.tmp constraints.txt

lint: $(STAMP)
	$(PY) -m ruff check src tests scripts
	$(VENV)/bin/lint-imports
	$(PY) -m deptry src
	$(PY) -m deptry tests scripts --exclude '\.venv' --ignore DEP002,DEP004

clean:
	rm -rf $(VENV) outputs/*/ .pytest_cache
