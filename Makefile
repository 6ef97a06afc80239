# The two commands a fresh machine needs: `make demo` and `make test`.
# Each builds .venv on first use (and again whenever pyproject.toml or constraints.txt change).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean qt-libs fleet-deps

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/station demo

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q
	$(BIN)/lint-imports
	$(BIN)/ruff check .

# `make demo` installs nothing outside .venv: system packages need root and change the machine for every
# program, so they are the owner's call. Where the window cannot start, `station demo` names the missing
# libraries and the apt-get line, and screens headless; this target (Debian/Ubuntu, as root) installs
# exactly the packages Qt's X11 plugin lacks here.
qt-libs: $(STAMP)
	@pkgs="$$($(BIN)/python -m station.qt_probe --missing-packages)"; \
	if [ -z "$$pkgs" ]; then echo "Qt's X11 plugin finds every library it needs"; \
	else echo installing $$pkgs; apt-get update -qq && apt-get install -y --no-install-recommends $$pkgs; fi

# The fleet's servers (Debian/Ubuntu, as root): the tests and `station fleet demo` start private instances of
# Mosquitto and PostgreSQL in temporary folders, never the system services these packages bring.
fleet-deps:
	@if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then echo "mosquitto: installed"; \
	else apt-get update -qq && apt-get install -y -qq mosquitto; fi
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; \
	then echo "postgresql: installed"; else apt-get update -qq && apt-get install -y -qq postgresql; fi

bench: $(STAMP)
	$(BIN)/python bench/replay.py

clean:
	rm -rf $(VENV)
