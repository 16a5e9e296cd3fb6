# AgCluster: `make run` serves the product, `make test` runs the whole suite, `make lint` checks it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml client/pyproject.toml | sha1sum | cut -c1-12)
UI_STAMP := static_ui/node_modules/.installed-$(shell cat static_ui/package.json static_ui/package-lock.json 2>/dev/null | sha1sum | cut -c1-12)

.PHONY: run demo test test-fast lint images bench install ui clean

$(STAMP): pyproject.toml client/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]' -e ./client
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ui

# Browser libraries come from npm at install time; nothing third-party is committed.
ui: $(UI_STAMP)
$(UI_STAMP): static_ui/package.json
	@if [ -f static_ui/package.json ]; then \
	  if command -v npm >/dev/null; then cd static_ui && npm install --no-audit --no-fund --silent && touch $(notdir $@) && mv $(notdir $@) node_modules/; \
	  else echo "npm not found: the dashboard needs Node.js/npm to fetch its browser libraries (apt-get install npm)"; exit 1; fi; fi

run: install
	@command -v bwrap >/dev/null || [ "$$CONTAINER_PROVIDER" = docker ] || [ "$$CONTAINER_PROVIDER" = fly_machines ] || \
	  { echo "bubblewrap is needed to sandbox local agents: sudo apt-get install bubblewrap"; \
	    echo "(or CONTAINER_PROVIDER=docker)"; exit 1; }
	$(BIN)/agcluster serve

demo: install
	$(BIN)/agcluster demo

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: install
	$(BIN)/python -m pytest -q -m "not docker and not browser" tests/unit tests/integration

# ruff and mypy read their settings from pyproject.toml, ESLint from static_ui/eslint.config.mjs.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	cd static_ui && node_modules/.bin/eslint .

images:
	bash scripts/build-images.sh

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) static_ui/node_modules
