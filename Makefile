# tickerd — see README.md. Each target is a line or a small script.
GO       ?= go
ADDR     ?= 127.0.0.1:8080
FUZZTIME ?= 30s
PKG      ?= ./...

.PHONY: build run test chromium vet fmt lint bench fuzz loadtest loadtest-quick plot clean

build:
	$(GO) build -o bin/ ./cmd/...

run: build
	@echo "tickerd: live quotes at http://$(ADDR)/  (Ctrl-C to stop)"
	./bin/tickerd -addr $(ADDR)

# The whole suite: vet and staticcheck, gofmt, a Chromium for the browser
# tests, then every test with the race detector on and nothing cached.
test: lint chromium
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) test -race -count=1 -timeout 30m ./...

# Installs Debian's chromium for web/clienttest when no Chromium is found.
chromium:
	./.ci/install-chromium

vet:
	$(GO) vet ./...

fmt:
	gofmt -w .

lint: vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Benchmarks of the hot paths; results go in docs/performance.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./conflate ./stream ./feed ./simulator

# Load scenarios on loopback (bench/): each starts its own tickerd.
loadtest: build
	./bin/tickerbench scenario footprint -tickerd ./bin/tickerd -out artifacts/footprint.json
	./bin/tickerbench scenario fanout -tickerd ./bin/tickerd -out artifacts/fanout.json

# Small versions (well under 2 minutes): zero errors and convergence only.
loadtest-quick: build
	./bin/tickerbench scenario footprint -tickerd ./bin/tickerd -conns 300 -target-kib 0 -duration 3s
	./bin/tickerbench scenario fanout -tickerd ./bin/tickerd -conns 100 -duration 5s

# docs/latency.png: latency percentiles against connection count, drawn from
# the JSON reports of make loadtest (make plot PLOT_REPORTS='artifacts/*.json').
PLOT_REPORTS ?= artifacts/hold-*.json
plot: build
	@test -n "$(wildcard $(PLOT_REPORTS))" || { echo "no $(PLOT_REPORTS): run make loadtest first"; exit 1; }
	./bin/tickerbench plot -o docs/latency.png $(PLOT_REPORTS)

# make fuzz FUZZ=FuzzParseLine PKG=./feed [FUZZTIME=1m]
fuzz:
	@test -n "$(FUZZ)" || { echo "usage: make fuzz FUZZ=FuzzName PKG=./pkg [FUZZTIME=30s]"; exit 2; }
	$(GO) test -run '^$$' -fuzz '^$(FUZZ)$$' -fuzztime $(FUZZTIME) $(PKG)

clean:
	rm -rf bin
