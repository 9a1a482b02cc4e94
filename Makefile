# qbt: `make report` and `make test` are all a newcomer needs (`make help` lists the rest).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.qbt-installed
EXTRAS ?= dev,dask
export PYTHONUNBUFFERED := 1

.PHONY: help env report test golden bench bench-quick bench-scaleout cluster readme-results clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	$(BIN)/python -m ipykernel install --sys-prefix --name qbt --display-name "qbt (Python 3)"
	touch $(STAMP)

env: $(STAMP) ## create .venv with the pinned dependencies and the `qbt` Jupyter kernel

report: env ## run every workload notebook at its small default and render outputs/report/index.html
	$(BIN)/python -m qbt_lib.report all

test: env ## the whole suite: pytest + nbval over the golden executed notebooks
	QBT_PROGRESS=0 $(BIN)/python -m pytest tests --nbval --nbval-current-env \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=600

golden: env ## re-execute the golden notebooks (tests/golden) at tiny parameters
	$(BIN)/python -m qbt_lib.report golden

bench: env ## every workload benchmark at full size (long)
	$(BIN)/python -m qbt_lib.bench all

bench-quick: env ## every workload benchmark at quick size
	$(BIN)/python -m qbt_lib.bench all --quick

bench-scaleout: env ## synth at 1e9 samples on a 2-process Dask cluster vs threads (long; quiet box)
	$(BIN)/python -m qbt_lib.synth.scaleout --n 1e9 --prefix 1e7

cluster: env ## a Dask scheduler + 2 workers as separate processes on 127.0.0.1 (Ctrl-C stops)
	$(BIN)/python -m qbt_lib.cluster --workers 2

readme-results: env ## rewrite README.md's results table from the bench JSON (outputs/bench)
	$(BIN)/python -m qbt_lib.report readme

clean: ## remove generated outputs (keeps .venv)
	rm -rf outputs/* && touch outputs/.gitkeep
