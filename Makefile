# eipd build and test entry points. `make check` is what CI runs.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
GO       ?= go
BIN      := eipd
DIST     ?= dist
# Where the release image goes, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/eipd.
IMAGE    ?= eipd
ARCHES   := amd64 arm64

.PHONY: build test check lint bench dist docker demo clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) .

# Unit, integration and end-to-end tests (the e2e suite builds the binary itself).
test:
	$(GO) test -race -count=1 -timeout 30m ./...

lint:
	$(GO) vet ./...
	staticcheck ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

check: lint test

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./e2e/

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
