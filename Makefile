# df-middleware — developer entry points. `make` alone lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO          ?= go
# The Go toolchain every target builds and tests with. go.mod keeps the
# language at go 1.26; the toolchain is go1.27.3 because the machine's
# go1.26.8 standard library has known vulnerabilities in code we call
# (net/http HTTP/2, crypto/tls, crypto/x509, html/template; `make vulncheck`
# lists them) and go1.27.3 is the newer toolchain the module proxy serves
# here. The go command fetches it once (~76 MB). GOTOOLCHAIN=local make …
# uses the installed Go instead.
export GOTOOLCHAIN ?= go1.27.3
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 30s
FUZZSHORT   ?= 5s
BIN         := bin

# Go files under version control or about to be, minus generated / foreign trees.
GOFILES_CMD := find . \( -path ./.git -o -path ./.pgdata -o -path ./.dev -o -path ./bin \
	-o -path ./node_modules -o -path ./interop/node_modules -o -name testdata \) -prune -o -name '*.go' -print

.PHONY: help run build test lint vet fmt-check staticcheck bench bench-mcp chaos fuzz fuzz-short vulncheck clean tools devdb devdb-stop interop-deps promtool alert-rules

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
	$(MAKE) --no-print-directory vulncheck; \
	$(MAKE) --no-print-directory interop-deps; \
	$(MAKE) --no-print-directory promtool; \
	$(MAKE) --no-print-directory alert-rules; \
	$(MAKE) --no-print-directory fuzz-short; \
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

chaos: ## fault-injection suite at full size (DF_CHAOS=full, ~8 min); results in .dev/chaos, report docs/reliability.md
	@DF_TEST_DATABASE_URL="$${DF_TEST_DATABASE_URL:-$$(scripts/devdb.sh)}"; \
	export DF_TEST_DATABASE_URL; \
	rm -rf .dev/chaos; mkdir -p .dev/chaos; \
	echo "==> DF_CHAOS=full go test -count=1 -v ./chaos (results in .dev/chaos)"; \
	rc=0; DF_CHAOS=full DF_CHAOS_OUT="$(CURDIR)/.dev/chaos" $(GO) test -count=1 -timeout 60m -v ./chaos || rc=$$?; \
	$(GO) run ./cmd/chaosreport -in .dev/chaos -out docs/reliability.md; \
	exit $$rc

fuzz: ## run every Fuzz* target for FUZZTIME each (default 30s; scripts/fuzz.sh)
	@DF_TEST_DATABASE_URL="$${DF_TEST_DATABASE_URL:-$$(scripts/devdb.sh)}"; \
	export DF_TEST_DATABASE_URL; \
	GO="$(GO)" scripts/fuzz.sh $(FUZZTIME)

fuzz-short: ## run every Fuzz* target briefly, FUZZSHORT each (default 5s); part of make test
	@DF_TEST_DATABASE_URL="$${DF_TEST_DATABASE_URL:-$$(scripts/devdb.sh)}"; \
	export DF_TEST_DATABASE_URL; \
	GO="$(GO)" scripts/fuzz.sh $(FUZZSHORT)

vulncheck: ## govulncheck against a local copy of the Go vulnerability database (scripts/vulncheck.sh); part of make test
	@echo "==> govulncheck ./... (scripts/vulncheck.sh)"
	@GO="$(GO)" scripts/vulncheck.sh

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

# The full `promtool check config` also stats the scrape's credentials_file
# (/etc/prometheus/secrets/...), absent on a development machine, so this one is
# --syntax-only; deploy/deploy_test.go runs the full check on a copy with a
# stand-in token, which also proves rule_files resolves.
alert-rules: ## check and unit-test the Prometheus alert rules (promtool) and the Alertmanager example (amtool)
	@$(MAKE) --no-print-directory promtool
	@if command -v amtool >/dev/null 2>&1; then \
		echo "==> amtool: $$(command -v amtool)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "==> amtool missing: apt-get install prometheus-alertmanager (it provides amtool)"; \
		apt-get update -qq || true; \
		if apt-cache policy prometheus-alertmanager 2>/dev/null | grep -Eq 'Candidate: [0-9]'; then \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null \
				|| echo "    apt-get install prometheus-alertmanager failed"; \
		else \
			echo "    no prometheus-alertmanager package in the apt sources"; \
		fi; \
	fi
	@skipped=""; \
	if command -v promtool >/dev/null 2>&1; then \
		echo "==> promtool check rules deploy/prometheus/alerts.yml"; \
		promtool check rules deploy/prometheus/alerts.yml; \
		echo "==> promtool test rules deploy/prometheus/alerts_test.yml"; \
		promtool test rules deploy/prometheus/alerts_test.yml; \
		echo "==> promtool check config --syntax-only deploy/prometheus/prometheus.yml"; \
		promtool check config --syntax-only deploy/prometheus/prometheus.yml; \
	else \
		skipped="$$skipped promtool"; \
	fi; \
	if command -v amtool >/dev/null 2>&1; then \
		echo "==> amtool check-config deploy/alertmanager/alertmanager.yml"; \
		amtool check-config deploy/alertmanager/alertmanager.yml; \
	else \
		skipped="$$skipped amtool"; \
	fi; \
	if [ -n "$$skipped" ]; then \
		echo "==> not installed:$$skipped: those alert-rule checks are skipped"; \
		if [ "$${CI:-}" = true ]; then echo "    CI=true: a skipped check is a failure"; exit 1; fi; \
	fi

tools: ## install the pinned developer tools into bin/ (staticcheck)
	GOBIN="$(CURDIR)/$(BIN)" $(GO) install $(STATICCHECK)

devdb: ## print the admin URL of the development PostgreSQL (starting one if needed)
	@scripts/devdb.sh

devdb-stop: ## stop the private cluster under .pgdata, if one runs
	@scripts/devdb.sh stop

clean: ## remove build and benchmark outputs (keeps .dev secrets and .pgdata)
	rm -rf $(BIN) .dev/bench
