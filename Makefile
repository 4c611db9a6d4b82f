# The one entry point for people and CI. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
GO ?= go

.PHONY: help run build test test-unit lint generate bench bench-load bench-distributed infra-up infra-down infra-status

help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: ## Start the embedded default (every service in one process, SQLite) on 127.0.0.1:8080.
	$(GO) run ./cmd/piazza dev

build: ## Build the binary into bin/piazza.
	$(GO) build -trimpath -o bin/piazza ./cmd/piazza

test: lint infra-up ## Lint, start the real servers if missing, then run every test tier.
	eval "$$(scripts/infra/env.sh)" && $(GO) test -race -count=1 -tags integration ./...

test-unit: ## Unit tier only: needs nothing running.
	$(GO) test -race -count=1 ./...

lint: ## go vet and staticcheck (version pinned in go.mod) on both build tiers.
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags integration ./...

generate: ## Regenerate protobuf/gRPC code (pinned protoc plugins); the output is committed.
	scripts/protoc.sh

bench: ## Micro-benchmarks (compared with the previous run) and every load scenario at small size; results in bench/results/.
	scripts/bench.sh

bench-load: ## Only the load scenarios (BENCH_SIZE=smoke|small|large, BENCH_ARGS for more flags).
	scripts/bench.sh load

bench-distributed: ## The load scenarios against a distributed deployment it starts on the real servers (BENCH_SIZE, BENCH_ARGS).
	scripts/bench.sh distributed

infra-up: ## Install (if missing) and start PostgreSQL, Redis, Kafka and Cassandra on loopback.
	scripts/infra/up.sh

infra-down: ## Stop the servers started by infra-up.
	scripts/infra/down.sh

infra-status: ## Show which local servers are running.
	scripts/infra/status.sh
