# edged: set-up and everyday commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint system-deps venv keys bench clean

$(STAMP): pyproject.toml edged-sim/pyproject.toml edged-platform/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e ./edged-sim -e ./edged-platform
	@# `trackers` pulls the GUI build of OpenCV, which needs libGL; keep only the headless one.
	$(PY) -m pip uninstall --quiet -y opencv-python || true
	$(PY) -m pip install --quiet --force-reinstall --no-deps "opencv-python-headless>=4.9"
	touch $(STAMP)

venv: $(STAMP)

## Debian packages the tests need (a real MQTT broker, a real PostgreSQL server); installed only when missing.
system-deps:
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || { \
	  echo "installing mosquitto (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq mosquitto >/dev/null; }
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing postgresql (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq postgresql >/dev/null; }

test: $(STAMP) system-deps
	$(PY) -m pytest -q

## Everything but the long trials (marked slow): the quick check while working.
test-fast: $(STAMP) system-deps
	$(PY) -m pytest -q -m "not slow"

## The code gate: style, import order and complexity (ruff), types (mypy); settings in pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check edged edged-platform/edged_platform edged-sim/edged_sim
	$(VENV)/bin/mypy

## Demo keys: the device signing key and one functional-platform pair per sensitive category.
keys: $(STAMP)
	@test -f data/keys/device.key || $(VENV)/bin/edged keygen device --out data/keys/device
	@test -f data/keys/func-face.key || $(VENV)/bin/edged keygen platform --out data/keys/func-face
	@test -f data/keys/func-plate.key || $(VENV)/bin/edged keygen platform --out data/keys/func-plate

demo: $(STAMP) keys
	$(VENV)/bin/edged run --config config/default.toml --duration 20

clean:
	rm -rf $(VENV) out data .pytest_cache
