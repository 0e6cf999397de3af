SHELL := /bin/bash
# eipd build and test entry points. `make check` is what CI runs.
# The version stamped into the binaries and the image tag: what git describe
# says when a tag names this commit or one before it (v1.2.0, v1.2.0-3-gabc1234),
# else the latest version of CHANGELOG.md (also main.version's default).
VERSION  ?= $(shell git describe --tags --dirty 2>/dev/null || sed -nE 's/^\#\# \[([0-9]+\.[0-9]+\.[0-9]+[^]]*)\].*/\1/p' CHANGELOG.md | head -n 1)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
GO       ?= go
BIN      := eipd
DIST     ?= dist
# Where the release image goes, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/eipd.
IMAGE    ?= eipd
ARCHES   := amd64 arm64

.PHONY: build test check lint model chaos bench bench-smoke chaos-report dist docker demo clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) .

# Unit, integration and end-to-end tests (the e2e suite builds the binary
# itself); the chaos suite runs on its own in `make chaos`.
# Without haproxy the end-to-end tests skip themselves (under CI=true they
# fail instead): say so loudly, whatever the outcome.
test:
	@$(GO) test -race -count=1 -timeout 30m -skip '^TestChaos$$' ./...; rc=$$?; \
	if ! command -v haproxy >/dev/null 2>&1; then \
		echo; echo "*** make test: haproxy is not installed: the END-TO-END TESTS (e2e/) WERE SKIPPED. Install haproxy to run them (CI=true makes them fail instead). ***"; echo; \
	fi; exit $$rc

lint:
	$(GO) vet ./...
	staticcheck ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

check: lint test chaos

# The model test's long search (leader/model_*_test.go): SEEDS random
# groups under random faults, every invariant of docs/design.md checked as
# they run. Prints "model: N seeds, M violations", the broken invariants
# with their seeds, and how to replay the first. `make test` runs 200.
SEEDS ?= 10000
model:
	@set -o pipefail; EIPD_MODEL_RUNS=$(SEEDS) $(GO) test -v -count=1 -timeout 0 -run '^TestModel$$' ./leader/ 2>&1 | \
		grep -E '^model:|broken in|replay:|^(ok|FAIL|---)'

# The chaos suite: production-shaped faults with real HAProxy, judged on the
# design's safety invariants and on what a client of the EIP sees
# (scripts/chaos.sh). RUNS=n repeats every scenario, SCENARIO=regexp picks
# scenarios by name, REPORT=1 also writes docs/CHAOS.md from the runs.
chaos:
	GO=$(GO) ./scripts/chaos.sh

# Benchmarks: long (about 45 minutes on 2 cores), so not part of check. The
# run's output is kept in bench.out, and docs/BENCHMARKS.md and
# docs/benchmarks-failover.png are rewritten from it (tools/benchreport).
# BENCH is a -bench pattern, e.g. make bench BENCH=Failover.
BENCH ?= .
bench:
	@{ $(GO) test -run '^$$' -bench '$(BENCH)' -benchtime 1x -timeout 120m ./e2e/ 2>&1; echo $$? > bench.rc; } | tee bench.out
	@rc=$$(cat bench.rc); rm -f bench.rc; if [ "$$rc" != 0 ]; then echo "make bench: the benchmarks failed (exit $$rc); docs/BENCHMARKS.md is unchanged"; exit 1; fi
	$(GO) run ./tools/benchreport -after bench.out -commit "$(REVISION)" -version "$(VERSION)" -out docs/BENCHMARKS.md -plot docs/benchmarks-failover.png

# docs/CHAOS.md and its plots (docs/chaos-*.png) from chaos-results.jsonl,
# the results `make chaos` saves (tools/chaosreport).
chaos-report:
	$(GO) run ./tools/chaosreport -in chaos-results.jsonl -commit "$(REVISION)" -version "$(VERSION)" -out docs/CHAOS.md -plots docs/

# A few minutes' proof that the benchmarks still run: one trial, short windows.
bench-smoke:
	E2E_TRIALS=1 E2E_IDLE_WINDOW=5s $(GO) test -run '^$$' -bench 'BenchmarkIdle|BenchmarkFailoverHAProxyDeath$$' -benchtime 1x -timeout 20m ./e2e/

# Release files: the static binaries, their SHA256SUMS (what user-data's
# EIPD_BINARY_SHA256_* take), and IMAGE_TAG, the image tag a release pushes.
dist:
	@mkdir -p $(DIST)
	for arch in $(ARCHES); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(DIST)/eipd-linux-$$arch . || exit 1; \
	done
	cd $(DIST) && sha256sum $(addprefix eipd-linux-,$(ARCHES)) > SHA256SUMS
	echo "$(IMAGE):$(VERSION)" > $(DIST)/IMAGE_TAG
	@echo "image tag: $(IMAGE):$(VERSION)"

docker:
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMAGE):$(VERSION) .

clean:
	rm -rf $(BIN) dist

# A three-instance group against the emulator, on loopback: failures injected, failover shown live.
demo:
	$(GO) run . demo
