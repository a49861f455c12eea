# servesim — two commands on a fresh machine (Python 3.11 + make):
#   make run    set up, print the verdict for the default scenario, open the planner (Streamlit)
#   make test   set up and run the whole test suite (installs Debian's chromium for the browser test when root)
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCENARIO ?= scenarios/vision-a100.yaml
PORT ?= 8501

.PHONY: setup run cli test test-fast lint bench fidelity fuzz browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[app,calibrate,sweep,test]"
	touch $(STAMP)

cli: setup
	$(BIN)/servesim run $(SCENARIO)

run: cli
	@if [ -f app.py ]; then \
	  echo "planner: http://localhost:$(PORT)  (Ctrl-C to stop)"; \
	  $(BIN)/streamlit run app.py --server.headless true --server.port $(PORT) --browser.gatherUsageStats false; \
	fi

browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "note: chromium not installed and not root: the browser test will be skipped"; fi

test: setup browser
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python -m benchmarks.run

fidelity: setup  # live ONNX Runtime serving vs prediction: 3 configurations x 2 loads x 2 runs of 8,000 requests, about 7 minutes (noisy on a shared host); ARGS="--predict-only DIR" re-predicts a saved run
	$(BIN)/python -m calibrate.transfer --validate  # LLM profile moved between measured GPUs / TP / models (5 s)
	$(BIN)/python -m calibrate.fidelity --out fidelity $(ARGS)

# 10,000 mutated scenarios and 10,000 `run` option sets; outcome counts in fuzz-report.json
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz FUZZ_REPORT=fuzz-report.json $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/test_fuzz.py tests/test_fuzz_files.py tests/test_fuzz_runlog.py tests/test_fuzz_sweeps.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
