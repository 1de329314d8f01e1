# Development tasks of the Agent Runtime workspace. `make` (or `make help`) lists them.
# A fresh machine needs only Python 3.11+ and make: every target installs uv and the workspace first.
.DEFAULT_GOAL := help

# uv must use the system Python: this machine and CI cannot download interpreters (pyproject.toml says
# python-downloads = "never" too; the variable also covers uv commands run outside the project).
export UV_PYTHON_DOWNLOADS := never

PYTHON ?= python3
UV ?= uv
# Bootstrap: without `uv` on PATH, use the uv module that `make install` pip-installs for $(PYTHON).
# The interpreter is resolved to an absolute path so that `python3` inside `uv run` (the workspace venv,
# which has no uv module) is never picked instead.
ifeq ($(UV),uv)
ifeq ($(shell command -v uv 2>/dev/null),)
UV := $(shell $(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null || echo $(PYTHON)) -m uv
endif
endif

PACKAGE_DIRS := $(wildcard packages/*/src/runtime_*)
# Synced when the lock or any pyproject changes; lives in .venv so that deleting the venv resets it.
INSTALL_STAMP := .venv/.make-install.stamp

define bootstrap
	@$(UV) --version >/dev/null 2>&1 || { \
		echo "uv not found: installing it with $(PYTHON) -m pip"; \
		$(PYTHON) -m pip install --user uv || $(PYTHON) -m pip install uv; \
	}
	$(UV) sync --frozen
	@touch $(INSTALL_STAMP)
endef

.PHONY: help
help: ## Show this help (the default goal)
	@echo "Usage: make <target>    (uv: $(UV))"
	@echo
	@awk 'BEGIN { FS = ":[^#]*## " } /^[a-zA-Z0-9_.-]+:[^=]*## / { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

.PHONY: install
install: ## Install uv if missing (pip), then sync the workspace venv from uv.lock (all packages with their extras, dev + lint groups)
	$(bootstrap)

$(INSTALL_STAMP): pyproject.toml uv.lock $(wildcard packages/*/pyproject.toml)
	$(bootstrap)

.PHONY: lint
lint: $(INSTALL_STAMP) ## Lint: ruff check, ruff format --check and the import contracts (lint-imports)
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen lint-imports

.PHONY: format
format: $(INSTALL_STAMP) ## Apply ruff's fixes and format the code
	$(UV) run --frozen ruff check --fix-only .
	$(UV) run --frozen ruff format .

.PHONY: typecheck
typecheck: $(INSTALL_STAMP) ## Type-check every package's src and scripts/ with mypy --strict (config in pyproject.toml)
	$(UV) run --frozen mypy $(PACKAGE_DIRS) scripts

.PHONY: test
test: $(INSTALL_STAMP) ## Run the import contracts, the whole test suite, then check-planes (what CI runs)
	$(UV) run --frozen lint-imports
	$(UV) run --frozen pytest
	$(UV) run --frozen python scripts/check_planes.py

.PHONY: demo
demo: $(INSTALL_STAMP) ## Run the offline demo: a scripted agent fixes a bug, the policy asks, the demo approves, the run replays identically
	$(UV) run --frozen agent-runtime demo

.PHONY: check-planes
check-planes: $(INSTALL_STAMP) ## Install each built wheel alone in a fresh venv, import all of it, run its plane's tests
	$(UV) run --frozen python scripts/check_planes.py

.PHONY: build
build: $(INSTALL_STAMP) ## Build the release: sdists and wheels of all six packages into dist/ (cleaned first), runtime-execution's compiled with mypyc
	rm -rf dist
	AGENT_RUNTIME_MYPYC=1 $(UV) build --all-packages -o dist/

# The benchmarks measure what a user installs: the release wheels, not the editable workspace sources.
BENCH_VENV := .venv-bench
BENCH_WHEELS := build/bench-wheels

.PHONY: bench-env
bench-env: $(INSTALL_STAMP) ## Make .venv-bench for bench/: the release wheels (agent loop compiled with mypyc) and the peers of the bench group
	rm -rf $(BENCH_WHEELS)
	AGENT_RUNTIME_MYPYC=1 $(UV) build --all-packages --wheel -o $(BENCH_WHEELS)
	UV_PROJECT_ENVIRONMENT=$(BENCH_VENV) $(UV) sync --frozen --exact --all-packages --all-extras --group bench --no-install-workspace
	$(UV) pip install --python $(BENCH_VENV)/bin/python --no-deps $(BENCH_WHEELS)/*.whl

.PHONY: bench
bench: bench-env ## Run every benchmark of bench/ on .venv-bench and print its table (several minutes)
	$(BENCH_VENV)/bin/python bench/loop_inmemory.py
	$(BENCH_VENV)/bin/python bench/durable_turn.py
	$(BENCH_VENV)/bin/python bench/policy.py

.PHONY: clean
clean: ## Remove build output, .venv-bench and tool caches (keeps .venv and the hypothesis example database)
	rm -rf dist build $(BENCH_VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .coverage htmlcov
	find . -path ./.venv -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
