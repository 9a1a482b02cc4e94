# qbt: `make report` and `make test` are all a newcomer needs (`make help` lists the rest).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.qbt-installed
EXTRAS ?= dev,dask
export PYTHONUNBUFFERED := 1

.PHONY: help env lab report test golden bench bench-check bench-quick bench-publish bench-scaleout cluster readme-results strip clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	$(BIN)/python -m ipykernel install --sys-prefix --name qbt --display-name "qbt (Python 3)"
	touch $(STAMP)

env: $(STAMP) ## create .venv with the pinned dependencies and the `qbt` Jupyter kernel

LAB_IP   ?= 127.0.0.1
LAB_PORT ?= 8888
lab: env ## JupyterLab on the project with the qbt kernel (127.0.0.1 + token; LAB_IP=0.0.0.0 listens wider)
	@$(BIN)/python -m qbt_lib.lab --ip $(LAB_IP) --port $(LAB_PORT)

report: env ## run every workload notebook at its small default and render outputs/report/index.html
	$(BIN)/python -m qbt_lib.report all

test: env ## the whole suite: pytest (browser tests in Debian's Chromium) + nbval over the golden notebooks
	@sh .ci/ensure-chromium
	QBT_PROGRESS=0 $(BIN)/python -m pytest tests --nbval --nbval-current-env \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=600

golden: env ## re-execute the golden notebooks (tests/golden) at tiny parameters
	$(BIN)/python -m qbt_lib.report golden

ASV := $(BIN)/asv --config asv.conf.json
bench: env ## record every workload benchmark at full size in asv's history (benchmarks/results, ~15 min on 2 cores)
	$(ASV) machine --yes
	QBT_BENCH_SIZE=full $(ASV) run --python=same --set-commit-hash=$$(git rev-parse HEAD) --show-stderr
	$(ASV) publish
	$(BIN)/python -m qbt_lib.report readme

bench-check: env ## the asv suite once at size tiny (seconds per workload; nothing recorded, no bench JSON written)
	QBT_BENCH_SIZE=tiny $(ASV) run --python=same --quick --dry-run --show-stderr

bench-publish: env ## render the asv history pages (benchmarks/html, linked from the report)
	$(ASV) publish

bench-quick: env ## every workload benchmark at quick size
	$(BIN)/python -m qbt_lib.bench all --quick

bench-scaleout: env ## synth at 1e9 samples on a 2-process Dask cluster vs threads (long; quiet box)
	$(BIN)/python -m qbt_lib.synth.scaleout --n 1e9 --prefix 1e7

cluster: env ## a Dask scheduler + 2 workers as separate processes on 127.0.0.1 (Ctrl-C stops)
	$(BIN)/python -m qbt_lib.cluster --workers 2

readme-results: env ## rewrite README.md's results table from the newest committed asv results
	$(BIN)/python -m qbt_lib.report readme

strip: env ## clear outputs and widget state from notebooks/*.ipynb (they are committed output-free)
	$(BIN)/python -m qbt_lib.lab strip

clean: ## remove generated outputs (keeps .venv)
	rm -rf outputs/* && touch outputs/.gitkeep
