# Set-up is part of every target: a fresh clone needs only Python 3.11, node 20 and npm.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: setup test lint demo bench bench-env bench-scale soak clean browser

setup: $(PY_STAMP) $(NODE_STAMP)

# Headless Chromium (Debian's package) for the browser tests; they are skipped, loudly, without it.
browser:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "warning: could not install chromium; browser tests will be skipped"; \
		else echo "warning: chromium missing (apt-get install chromium); browser tests will be skipped"; fi; }

$(PY_STAMP): pyproject.toml constraints.txt setup.py auditor/chain/_logwire.c
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found: install node 20 and npm"; exit 2; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: setup
	$(BIN)/ruff check auditor tests benchmarks
	$(BIN)/mypy

# Two workers, one test file each at a time (module fixtures such as the demo's chains are built once): 5.5 min
# instead of 10 on the 2-core CI machine, measured on a fresh clone.
test: lint browser
	$(BIN)/pytest -q -n 2 --dist loadfile

demo: setup
	$(BIN)/auditor validate
	$(BIN)/auditor demo --out reports

# Peers that `make bench` measures the chain client against (dank_mids, cryo, orjson), pinned in a venv of their
# own: never the project's dependencies. Without it the benchmark runs and reports those peers as not measured.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

bench-env: $(BENCH_STAMP)

$(BENCH_STAMP): benchmarks/peers/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r benchmarks/peers/requirements.txt
	touch $@

# Long runs stay out of `make test`: the chain client against its floors and peers, interleaved (results.md),
# HTTP requests per audit, and 10,000 fuzzed inputs.
bench: setup
	@$(MAKE) --no-print-directory bench-env || echo "warning: bench-only venv not installed: peers will be reported as not measured"
	$(BIN)/python benchmarks/run.py --write
	$(BIN)/python benchmarks/requests_bench.py --out benchmarks/requests.md
	$(BIN)/python benchmarks/fuzz_inputs.py --cases 10000 --out benchmarks/fuzz_inputs.md

# Issue 15's soak: 300 generated scenarios of each family traced against the truth of their construction
# (seeds 0-299: one chain, Morpho; 1000-1299: Aave and two chains with bridges). Pass counts in benchmarks/scenarios.md.
# Issue 16's: 300 seeded completeness worlds (unlisted lenders, repayments, an unlisted vault) audited against theirs.
soak: setup
	$(BIN)/python -m auditor.lab.scenarios --seeds 300 --first 0 --out benchmarks/scenarios.md
	$(BIN)/python -m auditor.lab.scenarios --seeds 300 --first 1000 --out benchmarks/scenarios-topologies.md
	$(BIN)/python -m auditor.lab.completeness --seeds 300 --first 0 --out benchmarks/completeness.md

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis

# Serial against Dask (2 local workers): audits of 10/40/160 generated issuers and a 1,000,000-log sharded trace
# (~10 min); results in benchmarks/scale.md.
bench-scale: setup
	$(BIN)/python -m benchmarks.scale_bench --out benchmarks/scale.md
