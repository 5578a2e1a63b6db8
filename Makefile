# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN ?= runs/demo
CLIPS ?=
CONSTRAINTS ?= constraints/cpu.txt
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(CONSTRAINTS) | sha1sum | cut -c1-12)
DEV_STAMP := $(STAMP)-dev

.PHONY: demo test lint install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The local machine's extras: CPU ONNX runtime and the demo's offline enhancers and TTS.
$(STAMP): $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[cpu,demo]'
	touch $@

# sgmse declares numpy<2/torchaudio/wandb it does not need for inference: --no-deps.
$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[cpu,demo,dev,diffusion]'
	$(BIN)/pip install --quiet --no-deps sgmse==0.1.2
	touch $@

install: $(STAMP)
install-dev: $(DEV_STAMP)

demo: $(STAMP)
	$(BIN)/serec demo --run $(RUN) $(if $(CLIPS),--clips $(CLIPS),)

test: $(DEV_STAMP)
	$(BIN)/ruff check serec tests benchmarks jobs
	$(BIN)/python -m pytest -q -rs

lint: $(DEV_STAMP)
	$(BIN)/ruff check serec tests benchmarks jobs

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
