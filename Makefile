# df-middleware — developer entry points. `make` alone lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 30s
BIN         := bin

# Go files under version control or about to be, minus generated / foreign trees.
GOFILES_CMD := find . \( -path ./.git -o -path ./.pgdata -o -path ./.dev -o -path ./bin \
	-o -path ./node_modules -o -path ./interop/node_modules -o -name testdata \) -prune -o -name '*.go' -print

.PHONY: help run build test lint vet fmt-check staticcheck bench bench-mcp fuzz clean tools devdb devdb-stop interop-deps promtool

help: ## list the targets
	@echo "df-middleware — make targets:"
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'
	@echo "variables: FUZZTIME=$(FUZZTIME) (per fuzz target), DATABASE_URL / DF_ADMIN_DATABASE_URL (skip the local bootstrap)"

run: ## start serve on a local database with development secrets (scripts/run.sh)
	@scripts/run.sh

build: ## compile every package and bin/df-middleware
	$(GO) build ./...
	$(GO) build -o $(BIN)/df-middleware ./cmd/df-middleware

test: ## database bootstrap, vet, gofmt, staticcheck, go test -race
	@echo "==> database (scripts/devdb.sh)"
	@DF_TEST_DATABASE_URL="$${DF_TEST_DATABASE_URL:-$$(scripts/devdb.sh)}"; \
	export DF_TEST_DATABASE_URL; \
	echo "    DF_TEST_DATABASE_URL=$$DF_TEST_DATABASE_URL"; \
	$(MAKE) --no-print-directory lint; \
	$(MAKE) --no-print-directory interop-deps; \
	$(MAKE) --no-print-directory promtool; \
	echo "==> go test -race -count=1 -timeout 20m ./..."; \
	$(GO) test -race -count=1 -timeout 20m ./...

lint: vet fmt-check staticcheck ## go vet, gofmt check, staticcheck

vet:
	@echo "==> go vet ./..."
	@$(GO) vet ./...

fmt-check:
	@echo "==> gofmt -l"
	@files="$$($(GOFILES_CMD) | xargs -r gofmt -l)"; \
	if [ -n "$$files" ]; then \
		echo "these files need gofmt -w:"; echo "$$files" | sed 's/^/    /'; exit 1; \
	fi

staticcheck:
	@echo "==> staticcheck ./... ($(STATICCHECK))"
	@$(GO) run $(STATICCHECK) ./...

bench: ## load benchmarks: intake/drain/e2e (docs/benchmarks.md), then MCP tools over big tables
	@scripts/bench.sh
	@$(MAKE) --no-print-directory bench-mcp

bench-mcp: ## MCP tool latency with 1M events and 1M sync_log rows; writes docs/benchmarks-mcp.md
	@ADMIN="$${DF_TEST_DATABASE_URL:-$$(scripts/devdb.sh)}"; \
	$(GO) build -o $(BIN)/df-middleware ./cmd/df-middleware; \
	$(GO) run ./cmd/mcpbench -bin $(BIN)/df-middleware -admin-url "$$ADMIN" -out docs/benchmarks-mcp.md

fuzz: ## run every Fuzz* target for FUZZTIME each (default 30s)
	@DF_TEST_DATABASE_URL="$${DF_TEST_DATABASE_URL:-$$(scripts/devdb.sh)}"; \
	export DF_TEST_DATABASE_URL; \
	targets="$$(grep -rEo --include='*_test.go' --exclude-dir=.pgdata --exclude-dir=.git --exclude-dir=node_modules \
		'^func Fuzz[A-Za-z0-9_]*\(' . | sed -E 's/^(.*)\/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($$/\1 \2/' | sort -u)"; \
	if [ -z "$$targets" ]; then echo "no fuzz targets found"; exit 0; fi; \
	while read -r dir name; do \
		echo "==> go test -run='^$$' -fuzz='^$$name$$' -fuzztime=$(FUZZTIME) $$dir"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) "$$dir" </dev/null; \
	done <<< "$$targets"

interop-deps: ## install the TypeScript MCP SDK client used by the interop test (needs Node)
	@if command -v npm >/dev/null 2>&1; then \
		echo "==> npm ci (interop/: @modelcontextprotocol/sdk)"; \
		cd interop && npm ci --no-audit --no-fund --loglevel=error; \
	else \
		echo "==> node/npm not installed: the TypeScript interop test will be skipped"; \
	fi

promtool: ## install promtool (Debian's prometheus package) when missing; the metrics test lints /metrics with it
	@if command -v promtool >/dev/null 2>&1; then \
		echo "==> promtool: $$(command -v promtool)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "==> promtool missing: apt-get install prometheus (it provides promtool)"; \
		apt-get update -qq || true; \
		if apt-cache policy prometheus 2>/dev/null | grep -Eq 'Candidate: [0-9]'; then \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
				|| echo "    apt-get install prometheus failed: the promtool check is skipped (it fails under CI=true)"; \
		else \
			echo "    no prometheus package in the apt sources: the promtool check is skipped (it fails under CI=true)"; \
		fi; \
	else \
		echo "==> promtool not installed and not root with apt-get: the promtool check is skipped (it fails under CI=true)"; \
	fi

tools: ## install the pinned developer tools into bin/ (staticcheck)
	GOBIN="$(CURDIR)/$(BIN)" $(GO) install $(STATICCHECK)

devdb: ## print the admin URL of the development PostgreSQL (starting one if needed)
	@scripts/devdb.sh

devdb-stop: ## stop the private cluster under .pgdata, if one runs
	@scripts/devdb.sh stop

clean: ## remove build and benchmark outputs (keeps .dev secrets and .pgdata)
	rm -rf $(BIN) .dev/bench
