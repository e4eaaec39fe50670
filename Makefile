# Two commands do all set-up: `make serve` (shipped model on :8000) and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
DATA   ?= ../shared/data/aclImdb_train.tar.gz
SST2   ?= ../shared/data/sst2

.PHONY: serve test lint typecheck unit docker-test wrk bench bench-rounds bench-smoke fuzz soak train compare clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Runtime dependencies only; re-run when pyproject.toml changes.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,train]'
	touch $@ $(VENV)/.runtime

serve: $(VENV)/.runtime ## start the service with the shipped IMDB model on $(PORT)
	PORT=$(PORT) $(BIN)/python -m service

test: $(VENV)/.dev lint typecheck unit ## ruff + mypy + the test suite

lint: $(VENV)/.dev
	$(BIN)/ruff check model service tests bench

typecheck: $(VENV)/.dev
	$(BIN)/mypy model service

unit: $(VENV)/.dev
	$(BIN)/python -m pytest -q

docker-test: $(VENV)/.runtime ## build the image from a local Debian base, run it, check it, clean up
	bash deploy/docker-test.sh

# The peers of `make bench` (LitServe); bench-smoke runs without them (the peer is skipped).
$(VENV)/.bench: pyproject.toml $(VENV)/.dev
	$(BIN)/pip install --quiet -e '.[dev,train,bench]'
	touch $@

# wrk (Debian's package) drives every latency and throughput figure: found, or installed where
# apt-get can; else make says how to get it and stops.
wrk:
	@command -v wrk >/dev/null 2>&1 || { echo "wrk not found: installing Debian's wrk package" >&2; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 || true; }
	@command -v wrk >/dev/null 2>&1 || { echo "wrk is missing and could not be installed: apt-get install wrk" >&2; exit 1; }
	@echo "load generator: $$(command -v wrk)"

bench: $(VENV)/.bench wrk ## offline ceiling, served load, peers, batching policy, start-up (minutes)
	$(BIN)/python -m bench.run --data $(DATA)

bench-rounds: $(VENV)/.bench wrk ## the service vs its peers in interleaved rounds (ratios on a busy machine)
	$(BIN)/python -m bench.rounds --data $(DATA) --rounds $${ROUNDS:-3}

bench-smoke: $(VENV)/.dev
	$(BIN)/python -m bench.run --smoke

fuzz: $(VENV)/.dev ## 2,000 schemathesis cases per operation, every check (--checks all), real server, with and without API_KEY
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-2000} $(BIN)/python -m pytest -q tests/service/test_fuzz.py -p no:cacheprovider

soak: $(VENV)/.dev ## steady load at ~70% capacity, SOAK_MINUTES (default 10)
	$(BIN)/python -m bench.soak --minutes $${SOAK_MINUTES:-10}

# The shipped model: every labelled source in ../shared/data, three classes (binary sources train
# the two polar ones). SST-2/SST-5 train whole (their own splits share sentences) and validate on
# their dev sets; IMDB validates on movies it never trained on.
REVIEWS ?= ../shared/data/reviews
OUT     ?= artifacts/review-sentiment
train: $(VENV)/.dev ## retrain the shipped model from ../shared/data (~75 min on 2 cores)
	$(BIN)/python -m model.train --data $(DATA) --weight 1.0 --imdb-urls $(dir $(DATA))aclImdb_train_urls \
		--data $(SST2)/train.tsv --weight 0.7 --data $(REVIEWS)/sst5_train.tsv --weight 0.3 \
		--data $(REVIEWS)/semeval_tweets_train.tsv --weight 1.0 \
		--data $(REVIEWS)/amazon_multidomain.tsv --weight 0.6 \
		--data $(REVIEWS)/amazon_musical_instruments.tsv --weight 0.35 \
		--data $(REVIEWS)/yelp_reviews.tsv --weight 0.5 \
		--whole sst2/train --whole sst5_train --val-data $(SST2)/dev.tsv --val-data $(REVIEWS)/sst5_dev.tsv \
		--out $(OUT) --crops 0.05 --augment 0.08 --epoch-size 80000 --max-vocab 50000 \
		--pretrain word2vec --threads 1 --epochs 10 --lr-decay 0.75 --time-budget 75

compare: $(VENV)/.dev ## architecture variants side by side on a short budget
	$(BIN)/python -m model.compare --data $(DATA)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
