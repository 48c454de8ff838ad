# kafka-backup. `make test` is what CI runs.
GO ?= go
BINARY ?= kafka-backup
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.dateBuilt=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)

.PHONY: build test test-deps vet bench demo clean fuzz-short

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINARY) ./cmd/kafka-backup

test-deps:
	@scripts/install-test-deps.sh

vet:
	$(GO) vet ./...

test: test-deps vet
	$(GO) test -count=1 -timeout 25m ./...
	$(MAKE) fuzz-short

# A short run of each fuzz target of the file reader (corpus in
# segment/testdata/fuzz). Longer: make fuzz-short FUZZTIME=10m
FUZZTIME ?= 10s
fuzz-short:
	$(GO) test -run x -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./segment/
	$(GO) test -run x -fuzz '^FuzzReadSpan$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./segment/
	$(GO) test -run x -fuzz '^FuzzRoundTrip$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./segment/

# The end-to-end benchmark (tests/bench/run): a kfake broker process loaded
# with 1 GiB of 1 KiB records over 8 partitions, each input into drop, the
# stock file output, kafka_backup local and FTP (pure-ftpd), and a bare
# franz-go writer; prints the table and updates docs/benchmarks.md.
# Quick run: make bench BENCH_ARGS="-size 256MiB". Scale cases:
# BENCH_ARGS="-scale all". All flags: go run ./tests/bench/run -h
BENCH_ARGS ?=

bench:
	@bash scripts/ftpd/install.sh >/dev/null 2>&1 || echo "bench: could not install pure-ftpd (scripts/ftpd/install.sh): the FTP rows will be skipped"
	GO=$(GO) $(GO) run ./tests/bench/run $(BENCH_ARGS)

demo:
	$(GO) run ./cmd/kafka-backup demo

clean:
	rm -rf $(BINARY) kafka-backup-demo
