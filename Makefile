# mlplan: the two front-door commands are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck lock clean bench

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
	$(UV) pip install --python $(BIN)/python --quiet -r requirements.lock
	$(UV) pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $(STAMP)

# The main job on the embedded defaults, no cloud account: a recommendation for an example spec, then the whole
# flow on this machine: plan -> deploy (Ray Serve, local) -> status -> destroy.
demo: $(STAMP)
	$(BIN)/mlplan recommend examples/chat-eu-pii.yaml
	rm -rf .demo && $(BIN)/mlplan plan examples/local-demo.yaml --out .demo/local-demo
	trap '$(BIN)/mlplan destroy .demo/local-demo' EXIT; \
		$(BIN)/mlplan deploy .demo/local-demo --target local && $(BIN)/mlplan status .demo/local-demo

test: $(STAMP)
	$(BIN)/ruff check planner stacks serving tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lock:
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_35 \
		--no-header --custom-compile-command "make lock" -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
