# Two commands do everything on a fresh machine: `make demo` and `make test`.
# TORCH pins the torch wheel: the default is the CPU wheel; a GPU user says e.g.
#   make test TORCH="torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124"
PYTHON ?= python3
TORCH  ?= torch==2.13.0
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

DEMO_DATA ?= data/synthetic
DEMO_OUT  ?= results/demo

.PHONY: install test demo bench docs clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q --durations=15

demo: $(STAMP)
	$(VENV)/bin/x3d-expand data synth $(DEMO_DATA) --classes 8 --videos-per-class 40 --val-per-class 25 --frames 48
	rm -rf $(DEMO_OUT)
	$(VENV)/bin/x3d-expand data cache experiments/synthetic_tiny.yaml
	$(VENV)/bin/x3d-expand search experiments/synthetic_tiny.yaml --out $(DEMO_OUT) --max-steps 1 --targets 0.003
	$(VENV)/bin/x3d-expand contract $(DEMO_OUT) --target-gflops 0.003
	$(VENV)/bin/x3d-expand show $(DEMO_OUT)

bench: $(STAMP)
	$(PY) benchmarks/model_throughput.py

# the configuration reference is generated from the schema (a test checks it is current)
docs: $(STAMP)
	$(PY) -m expand.config_reference > docs/configuration.md

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
