# The two commands of the README:
#   make run   create the environment, install socketkit, start `socketkit serve`
#   make test  install the test tools, then lint (ruff), types (mypy strict) and tests (pytest)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: run test lint types pytest tools clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "socketkit needs Python 3.11 or newer: $$($(PYTHON) --version)"; exit 1; }
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "could not create a virtual environment: on Debian/Ubuntu run: sudo apt-get install python3-venv"; exit 1; }

$(VENV)/.installed: pyproject.toml setup.py $(wildcard src/socketkit/runtime/*.c) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml setup.py $(wildcard src/socketkit/runtime/*.c) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	@echo "socketkit is installed in $(VENV): in another terminal, run . $(VENV)/bin/activate"
	$(BIN)/socketkit serve $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests $(wildcard benchmarks)
	$(BIN)/ruff format --check src tests $(wildcard benchmarks)

types: $(VENV)/.installed-test
	$(BIN)/mypy

# Real engines the tests start on loopback: tcpdump (reads our pcaps back), xinetd
# (inetd mode, probe), haproxy (PROXY protocol), ncat (listen), chromium (the
# layers HTML page), systemd-socket-activate (socket activation). Installed when
# we may (root + apt); otherwise the tests that need one skip, naming it.
TOOLS := tcpdump:tcpdump xinetd:xinetd haproxy:haproxy ncat:ncat chromium:chromium \
         systemd-socket-activate:systemd
tools:
	@missing=""; for pair in $(TOOLS); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "not root, so not installing:$$missing - the tests that need them will skip"; fi; fi

pytest: $(VENV)/.installed-test tools
	$(BIN)/python -m pytest $(ARGS)

test: lint types pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build src/*.egg-info
	rm -f src/socketkit/runtime/*.so
