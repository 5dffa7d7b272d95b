# Two entry points for a fresh machine: `make run` (the chat) and `make test` (the test suite).
# Each creates its own virtual environment in .venv and installs the project into it first.
PYTHON ?= python3
VENV ?= .venv

.PHONY: run test install

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/yollava chat

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q
