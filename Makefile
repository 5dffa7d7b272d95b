# Two entry points for a fresh machine: `make run` (the chat app) and `make test` (the tests).
# Each creates its own virtual environment in .venv and installs the project into it first, with
# the test tools and the optional Ray extra (the Ray backend's tests start a local cluster).
PYTHON ?= python3
VENV ?= .venv
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test install browser

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[test,ray]'
	touch $@

install: $(VENV)/.installed

# The browser test drives Debian's chromium (never a downloaded browser build).
browser:
	@test -x $(CHROMIUM) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

run: $(VENV)/.installed
	$(VENV)/bin/yollava ui

test: $(VENV)/.installed browser
	HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False $(VENV)/bin/python -m pytest -q
