# human3d: set up, test, demo.  `make demo` and `make test` work on a fresh machine (they install first).
SHELL := /bin/bash
PYTHON3 ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# CPU machines get the pinned CPU build; on a GPU machine pass your CUDA build, e.g. TORCH="torch==2.13.0"
# with your index, or install torch into .venv first: an installed torch is kept.
TORCH ?= torch==2.13.0
EXTRAS ?= all,dev
STAMP := $(VENV)/.human3d-installed

.PHONY: install test demo lint clean help
help:
	@echo "make install | test | demo | lint | clean"

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@# open3d needs Debian's libusb-1.0-0 to import
	@if command -v dpkg >/dev/null && ! dpkg -s libusb-1.0-0 >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq || true) && apt-get install -y -qq libusb-1.0-0; \
	  else echo "note: install libusb-1.0-0 (sudo apt-get install libusb-1.0-0) for open3d"; fi; fi
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# torch first, so no package pulls an unpinned (CUDA) build
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[$(EXTRAS)]"
	@# rembg pulls opencv-python-headless; mediapipe needs opencv-contrib-python; both own the cv2 folder
	@if $(PIP) show -q opencv-python-headless >/dev/null 2>&1; then \
	  v=$$($(PIP) show opencv-contrib-python | sed -n 's/^Version: //p'); \
	  $(PIP) uninstall -q -y opencv-python-headless && \
	  $(PIP) install -q --no-deps --force-reinstall "opencv-contrib-python==$$v"; fi
	@# headless Chromium (Debian's package) opens report.html in the report test (skipped without it)
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	    || echo "note: chromium not installed; the report's browser test will skip"; \
	  else echo "note: install chromium (sudo apt-get install chromium) to run the report's browser test"; fi; fi
	@# from npm into .tools: the Khronos glTF validator (end-to-end test) and the 3D viewer that
	@# `human3d report` copies beside report.html (@google/model-viewer, Apache-2.0, three.js inside)
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --prefix .tools --no-audit --no-fund --loglevel=error gltf-validator@2.0.0-dev.3.10 \
	    @google/model-viewer@4.4.0 \
	  || echo "note: npm packages not installed; GLB validation and the report's 3D viewer will be missing"; \
	else echo "note: no npm: report.html will have no 3D viewer and the GLB validation test will skip"; fi
	$(PY) -c "import cv2, mediapipe, torch, human3d; print('human3d', human3d.__version__, 'torch', torch.__version__)"
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

demo: install
	$(PY) examples/demo.py

lint: install
	$(VENV)/bin/ruff check human3d tests benchmarks examples

clean:
	rm -rf $(VENV) .tools build *.egg-info .pytest_cache demo_output
