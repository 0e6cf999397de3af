# eipd build and test entry points. `make check` is what CI runs.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
GO       ?= go
BIN      := eipd
DIST     ?= dist

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

dist:
	@mkdir -p $(DIST)
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(DIST)/eipd-linux-$$arch . || exit 1; \
	done

docker:
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t eipd:$(VERSION) .

clean:
	rm -rf $(BIN) dist

# A three-instance group against the emulator, on loopback: failures injected, failover shown live.
demo:
	$(GO) run . demo
