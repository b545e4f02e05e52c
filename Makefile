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
# tests, every test with the race detector on and nothing cached, then the
# quick load scenarios.
test: lint chromium
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) loadtest-quick

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

# Load scenarios on loopback (bench/): each starts its own tickerd (hold-50k
# three, clustered over embedded NATS). hold is swept over connection counts
# (artifacts/hold-N.json) for the plot of latency percentiles against
# connections, where hold-50k is the 3-node point.
HOLD_SWEEP ?= 2000 5000 10000 18000
TICKERBENCH = ./bin/tickerbench scenario
loadtest: build
	@mkdir -p artifacts
	$(TICKERBENCH) footprint -tickerd ./bin/tickerd -out artifacts/footprint.json
	for n in $(HOLD_SWEEP); do \
		$(TICKERBENCH) hold -tickerd ./bin/tickerd -conns $$n -out artifacts/hold-$$n.json || exit 1; \
	done
	$(TICKERBENCH) fanout -tickerd ./bin/tickerd -out artifacts/fanout.json
	$(TICKERBENCH) fanout-wide -tickerd ./bin/tickerd -out artifacts/fanout-wide.json
	$(TICKERBENCH) mixed -tickerd ./bin/tickerd -out artifacts/mixed.json
	$(TICKERBENCH) throttle -tickerd ./bin/tickerd -out artifacts/throttle.json
	$(TICKERBENCH) throttle -tickerd ./bin/tickerd -slow 0.1 -out artifacts/throttle-slow.json
	$(TICKERBENCH) churn -tickerd ./bin/tickerd -out artifacts/churn.json
	$(TICKERBENCH) hold-50k -tickerd ./bin/tickerd -out artifacts/hold-50k.json

# Small versions of every scenario (well under 2 minutes): each exits
# non-zero on a failed session, a server error, a protocol violation, a
# failed convergence check or, for churn, a server that does not come back
# to baseline; none asserts a time.
QUICK = $(TICKERBENCH) -tickerd ./bin/tickerd -quiet
loadtest-quick: build
	$(QUICK) footprint -conns 300 -target-kib 0 -duration 3s
	$(QUICK) hold -conns 300 -procs 2 -duration 3s
	$(QUICK) fanout -conns 200 -duration 3s
	$(QUICK) fanout-wide -conns 100 -duration 3s
	$(QUICK) mixed -conns 200 -duration 3s
	$(QUICK) throttle -conns 200 -slow 0.1 -duration 3s
	$(QUICK) churn -conns 300 -rate 50 -duration 20s
	$(QUICK) hold-50k -conns 300 -procs 2 -duration 3s

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
