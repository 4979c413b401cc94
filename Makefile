# edge: make run | make test | make fuzz | make bench | make bench-quick
GO      ?= go
BIN     := $(CURDIR)/bin
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 60s

.PHONY: run build test tools fuzz vet bench bench-quick docker clean

## run: the edge on its bundled demo site at http://127.0.0.1:8080/ (admin on 127.0.0.1:9080)
run:
	$(GO) run -ldflags '-X main.version=$(VERSION)' ./cmd/edge

## build: static binaries into ./bin
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

## tools: the pinned test tools (versitygw, pebble, promtool; dig and chromium with apt) into ./bin
tools:
	./scripts/install-tools.sh

## test: vet, then every test with the race detector, then each fuzz target briefly (scripts/test.sh; builds the tools into ./bin meanwhile)
test:
	./scripts/test.sh

## fuzz: every fuzz target for FUZZTIME each (default 60s)
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

bench:
	$(GO) run ./bench $(BENCHFLAGS)

bench-quick:
	$(GO) run ./bench -quick $(BENCHFLAGS)

## lab: the whole CDN on this machine (three regions, every scenario), report in lab/results/ (root: namespaces)
.PHONY: lab
lab: tools
	PATH="$(BIN):$$PATH" $(GO) run ./cmd/edge-lab $(LABFLAGS)

docker:
	docker build -t edge:$(VERSION) .

clean:
	rm -rf $(BIN)
