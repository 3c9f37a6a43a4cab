# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install the project first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install test demo lint clean

$(STAMP): setup.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# Pinned here, ranges in setup.py: this machine's disk has exactly these two builds that work together.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev]"
	# MTCNN face detector (faces/): its metadata pins torch<2.3, so never let pip resolve its dependencies
	$(PY) -m pip install -q --no-deps facenet-pytorch==2.6.0
	$(PY) -c "import cv2; assert hasattr(cv2, 'optflow'), 'cv2.optflow missing: pip uninstall -y opencv-python opencv-python-headless; pip install --force-reinstall opencv-contrib-python-headless'"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Two pytest workers with one OpenMP/BLAS thread each keep both cores of a 2-core machine busy without
# oversubscribing them (the suite ran at ~1 core of 2 alone); a file's tests stay on one worker (module fixtures),
# and files are handed out in collection order, where tests/conftest.py puts the slowest first (xdist's default
# order, most tests first, hands out the one-test files last, and some are among the longest).
# --durations lists the slowest tests in every run (CI logs included), to see where the time goes.
TEST_WORKERS ?= 2

test: $(STAMP) lint
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

# `make demo` (README "The demo"): synthetic videos -> TV-L1 stores -> two-stream I3D -> centre-crop test.
# DEMO_SEED changes the whole run (the toy videos, the initialisation, the clip sampling and order); seed 0 writes
# runs/demo, seed N runs/demo-seedN. A rerun keeps the videos and stores, resumes $(DEMO)/train when its config is
# this one (a finished run: no-op) and retrains from scratch when it is not. Change DEMO_TOY only after `make clean`.
DEMO_SEED ?= 0
DEMO ?= runs/demo$(if $(filter 0,$(DEMO_SEED)),,-seed$(DEMO_SEED))
DEMO_CONFIG := configs/toy_i3d_two_stream.yaml
DEMO_TOY := --size 48x64 --frames 10 --videos-per-class 48 --clips-per-group 1 --test-groups 8 --seed $(DEMO_SEED)
# the numba engine: OpenCV's TV-L1 at a few times its speed (docs/PERFORMANCE.md); bound 8 px keeps 8-bit steps
# at 0.06 px
DEMO_FLOW := --short-side 0 --engine numba --bound 8
DEMO_WORKERS ?= 2
# DeepMind's Kinetics-400 RGB I3D initialises the RGB stream when the file is there (the demo works without it)
KINETICS_RGB ?= $(or $(I3D_SHARED_DIR),../shared)/weights/i3d-kinetics-400.ckpt
DEMO_SET := --set data.index=$(DEMO)/toy --set data.store_root=$(DEMO)/h5 --set train.seed=$(DEMO_SEED) \
	$(if $(wildcard $(KINETICS_RGB)),--set model.rgb.pretrained=$(KINETICS_RGB))

demo: $(STAMP)
	$(PY) tools/make_toy_dataset.py --out $(DEMO)/toy $(DEMO_TOY) --no-progress
	$(PY) tools/extract_flow.py --videos $(DEMO)/toy/videos --out $(DEMO)/h5 $(DEMO_FLOW) --workers $(DEMO_WORKERS) \
		--no-progress
	if $(PY) tools/demo_report.py same-config $(DEMO)/train/last.pt $(DEMO_CONFIG) $(DEMO_SET); then \
		$(PY) tools/train_two_stream.py --resume $(DEMO)/train; \
	else rm -rf $(DEMO)/train && $(PY) tools/train_two_stream.py --config $(DEMO_CONFIG) --out $(DEMO)/train $(DEMO_SET); fi
	$(PY) tools/eval.py --center-crop --checkpoint $(DEMO)/train/best.pt --out $(DEMO)/results.json
	$(PY) tools/demo_report.py table $(DEMO)/results.json

clean:
	rm -rf runs/demo runs/demo-seed*
