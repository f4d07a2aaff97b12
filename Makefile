# Thin wrappers over noxfile.py, with a pinned uv and the locked dev environment in .venv.
PYTHON ?= python3
UV := .tools/bin/uv
# uv's one pin is in the tooling package's dependencies (tools/pyproject.toml).
UV_VERSION := $(shell sed -n 's/^ *"uv==\(.*\)",$$/\1/p' tools/pyproject.toml)
NOX := $(UV) run --frozen nox

.PHONY: help demo bench test lint render clean

help: ## List the targets
	@grep -E "^[a-z-]+:.*## " $(MAKEFILE_LIST) | sed "s/:.*## /\t/"

$(UV):
	$(PYTHON) -m venv .tools && .tools/bin/pip install --quiet uv==$(UV_VERSION)

# Compiled once here: where PYTHONDONTWRITEBYTECODE is set, nox would recompile itself on every
# run (a tenth of a second a session); a compile-bytecode setting would recheck on every uv run.
.venv/.synced: pyproject.toml tools/pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode && touch $@

demo: .venv/.synced ## Render the default answers into build/demo and build every image
	$(NOX) -s demo

bench: .venv/.synced ## Benchmark against uv's Docker example and a naive file: build/bench/report.md
	$(NOX) -s bench

test: .venv/.synced ## Run the tests (the Docker ones need a running engine)
	$(NOX) -s tests

lint: .venv/.synced ## Lint the template repository
	$(NOX) -s lint

render: .venv/.synced ## Render into build/render: make render ARGS="services=[...]"
	$(NOX) -s render_repo -- $(ARGS)

clean: ## Remove rendered repos and the dev environment
	rm -rf build .venv .tools
