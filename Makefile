# kafka-backup. `make test` is what CI runs.
GO ?= go
BINARY ?= kafka-backup
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.dateBuilt=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)

.PHONY: build test test-deps vet bench demo clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINARY) ./cmd/kafka-backup

test-deps:
	@scripts/install-test-deps.sh

vet:
	$(GO) vet ./...

test: test-deps vet
	$(GO) test -count=1 -timeout 25m ./...

demo:
	$(GO) run ./cmd/kafka-backup demo

clean:
	rm -rf $(BINARY) kafka-backup-demo
