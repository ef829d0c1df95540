# mlplan: the two front-door commands are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
STAMP := $(VENV)/.installed
# checkov pins old boto3/packaging: it lives in its own environment, from its own lock
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
# The test oracle (transformers + CPU torch, tests/test_models_oracle.py) lives in its own environment, installed with
# pip from its own pins: pip takes torch's CPU build from the machine's local wheels (uv would fetch a CUDA build).
ORACLE_VENV := .venv-oracle
ORACLE_STAMP := $(ORACLE_VENV)/.installed

.PHONY: demo test lint typecheck lock clean bench

# Bytecode is written as modules are first imported, by every command make runs: where PYTHONDONTWRITEBYTECODE is
# set, as on the shared development machines, each `mlplan plan` would otherwise compile the Pulumi SDKs from source
# again (~10 s of CPU per run). Compiling only what is imported costs a fraction of compiling the whole environment.
unexport PYTHONDONTWRITEBYTECODE

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
	$(UV) pip install --python $(BIN)/python --quiet -r requirements.lock
	$(UV) pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $(STAMP)

# The main job on the embedded defaults, no cloud account: a recommendation for an example spec, then the whole
# flow on this machine: plan -> deploy (Ray Serve, local) -> status -> destroy.
$(CHECKOV_STAMP): requirements-checkov.lock $(STAMP)
	test -x $(CHECKOV_VENV)/bin/python || $(PY) -m venv $(CHECKOV_VENV)
	$(UV) pip install --python $(CHECKOV_VENV)/bin/python --quiet -r requirements-checkov.lock
	touch $(CHECKOV_STAMP)

$(ORACLE_STAMP): requirements-oracle.txt
	test -x $(ORACLE_VENV)/bin/python || $(PY) -m venv $(ORACLE_VENV)
	$(ORACLE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-oracle.txt
	touch $(ORACLE_STAMP)

demo: $(STAMP)
	$(BIN)/mlplan recommend examples/chat-eu-pii.yaml
	rm -rf .demo && $(BIN)/mlplan plan examples/local-demo.yaml --out .demo/local-demo
	trap '$(BIN)/mlplan destroy .demo/local-demo' EXIT; \
		$(BIN)/mlplan deploy .demo/local-demo --target local && $(BIN)/mlplan status .demo/local-demo

test: $(STAMP) $(CHECKOV_STAMP) $(ORACLE_STAMP)
	$(BIN)/ruff check mlplan planner stacks serving tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lock:
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_35 \
		--no-header --custom-compile-command "make lock" -o requirements.lock
	$(UV) pip compile requirements-checkov.in --python-version 3.11 --python-platform x86_64-manylinux_2_35 \
		--no-header --custom-compile-command "make lock" -o requirements-checkov.lock

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(ORACLE_VENV) .pytest_cache .mypy_cache .ruff_cache
