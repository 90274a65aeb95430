# gridwatch — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
DB     ?= data/gridwatch.duckdb
PORT   ?= 8501

.PHONY: run test test-pg bench demo-db lint clean help

help:
	@echo "make run    - install, build the demo database on first start, serve the app on port $(PORT)"
	@echo "make test   - install and run the whole test suite"
	@echo "make test-pg - the whole suite with its store and demo databases on PostgreSQL (GRIDWATCH_TEST_PG, or a"
	@echo "              private local cluster when the PostgreSQL and PostGIS packages are installed)"
	@echo "make bench  - run the benchmarks (make bench NAME=grid_province for one)"

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

$(DB): | $(STAMP)
	$(PY) -m gridwatch init --region 410329 --demo --db $(DB)

demo-db: $(DB)

run: $(STAMP) $(DB)
	GRIDWATCH_DB=$(DB) $(VENV)/bin/streamlit run app.py --server.port $(PORT) --server.headless true

test: $(STAMP)
	$(PY) -m pytest

test-pg: $(STAMP)
	GRIDWATCH_TEST_BACKEND=postgres $(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks $(NAME)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis benchmarks/results
