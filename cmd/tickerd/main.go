// Command tickerd is the market-data streaming server: it ingests feeds
// into the conflating cache and pushes changes to subscribers over
// WebSocket, SSE and HTTP streaming. It only parses flags and wires the
// packages together.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tickerd/feed"
	"tickerd/internal/cli"
	"tickerd/simulator"
	"tickerd/stream"
)

// config is the parsed command line.
type config struct {
	addr           string
	feeds          cli.Repeatable
	simSymbols     int
	simRate        float64
	simSeed        int64
	ingestKey      string
	allowedOrigins string
	maxHz          float64
	maxSymbols     int
	heartbeat      time.Duration
	stallTimeout   time.Duration
	maxConnAge     time.Duration
	maxBody        int64
	maxSessionBPS  int64
	pacingMaxGap   time.Duration
	compression    bool
	streamPadding  int
	wsDeflateMax   int
	adminKey       string
	authFile       string
	delay          time.Duration
	delayBuffer    int64
	authTimeout    time.Duration
	maxOpRate      float64
	maxOpSymbols   int
	maxMessage     int
	tlsCert        string
	tlsKey         string
	staleAfter     time.Duration
	logFormat      string
	logLevel       string
	record         string
	recordQueue    int
	cluster        clusterFlags
	reuseport      bool
}

const usageHead = `tickerd — market-data streaming server

Usage: tickerd [flags]

Every flag can also come from the environment: TICKERD_ + its name in upper
case with - as _ (-max-hz → TICKERD_MAX_HZ); -feed there takes a comma list.

Flags:
`

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{feeds: cli.Repeatable{Values: []string{"sim"}}}
	fs := flag.NewFlagSet("tickerd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.addr, "addr", ":8080", "HTTP listen `address`")
	fs.Var(&c.feeds, "feed", "feed `source`, repeatable: sim, none, replay:PATH[?speed=10x&loop=1&start=T&end=T], tcp:ADDR (NDJSON over TCP; tickerd listens),\n"+
		"csv:PATH[?symbol=COL&FIELD=COL&ts=COL&ignore=COL,COL|*] (a CSV file with a header row, loaded once at start;\n"+
		"columns named like fields map by default),\n"+
		"ws:URL?mapping=NAME|FILE.json[&subscribe=JSON|@FILE]... (tickerd dials the ws:// or wss:// URL, sends the\n"+
		"subscribe messages after each connect and maps each JSON message; built-in mappings: "+strings.Join(feed.MappingNames(), ", ")+";\n"+
		"mapping and subscribe are taken out of the URL, other parameters go to the upstream)")
	fs.IntVar(&c.simSymbols, "sim-symbols", 200, "built-in simulator: number of symbols")
	fs.Float64Var(&c.simRate, "sim-rate", 2000, "built-in simulator: total updates per second")
	fs.Int64Var(&c.simSeed, "sim-seed", 1, "built-in simulator: random seed")
	fs.StringVar(&c.ingestKey, "ingest-key", "", "bearer `key` required on POST /v1/ingest; empty = loopback peers only")
	fs.StringVar(&c.adminKey, "admin-key", "", "bearer `key` required on /v1/admin/*; empty = loopback peers only")
	fs.StringVar(&c.allowedOrigins, "allowed-origins", "", "comma `list` of browser Origins allowed; empty = the server's own host only, plus any in open mode")
	fs.StringVar(&c.authFile, "auth", "", "entitlements `file` (YAML: groups, users, API keys, jwt); empty = open mode. Reloaded on SIGHUP and POST /v1/admin/reload")
	fs.DurationVar(&c.delay, "delay", 15*time.Minute, "delay of the delayed tier")
	fs.Int64Var(&c.delayBuffer, "delay-buffer", 256<<20, "`bytes` the delayed tier may buffer; past it, changes are grouped more coarsely (never younger than -delay)")
	fs.DurationVar(&c.authTimeout, "auth-timeout", 10*time.Second, "time a WebSocket client without a credential has to send its auth op")
	fs.Float64Var(&c.maxOpRate, "max-op-rate", 20, "client ops per second per session (bursts of twice as many pass); more get limit_exceeded")
	fs.IntVar(&c.maxOpSymbols, "max-op-symbols", 1000, "most symbols one subscribe or unsubscribe op may name")
	fs.IntVar(&c.maxMessage, "max-message-bytes", 64<<10, "largest client message (WebSocket message, session op body) in `bytes`, at most 1 MiB")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate `file` (PEM); with -tls-key, serves HTTPS and WSS. Reloaded on SIGHUP")
	fs.StringVar(&c.tlsKey, "tls-key", "", "TLS private key `file` (PEM)")
	fs.DurationVar(&c.staleAfter, "stale-after", 0, "mark a feed's symbols status stale when it sends nothing this long (e.g. 30s); 0 = never")
	fs.Float64Var(&c.maxHz, "max-hz", 20, "ceiling on messages per symbol per second per session")
	fs.IntVar(&c.maxSymbols, "max-session-symbols", 1000, "most symbols one session may subscribe")
	fs.Int64Var(&c.maxSessionBPS, "max-session-bps", 0, "most `bytes` per second written to one session, averaged over its writes; 0 = no cap")
	fs.DurationVar(&c.pacingMaxGap, "pacing-max-gap", stream.DefaultPacingMaxGap, "when writers fall behind, sessions batch their writes up to this far apart; 0 = never")
	fs.BoolVar(&c.compression, "compression", true, "gzip SSE, NDJSON and long-poll answers for clients that accept it")
	fs.IntVar(&c.streamPadding, "stream-padding", 0, "`bytes` of padding SSE and NDJSON streams open with, for proxies that buffer a response's start (0-65536; ?pad=N per request)")
	fs.IntVar(&c.wsDeflateMax, "ws-deflate-max-sessions", 1000, "most WebSocket sessions given permessage-deflate when they offer it (0 = none)")
	fs.DurationVar(&c.heartbeat, "heartbeat", 15*time.Second, "idle interval after which a heartbeat is sent")
	fs.DurationVar(&c.stallTimeout, "stall-timeout", 30*time.Second, "close a session whose writes make no progress this long")
	fs.DurationVar(&c.maxConnAge, "max-conn-age", 10*time.Minute, "end streaming connections cleanly after this age")
	fs.Int64Var(&c.maxBody, "max-ingest-body", 8<<20, "largest POST /v1/ingest body in `bytes`")
	fs.StringVar(&c.record, "record", "", "record every applied update into hourly captures named after `path` (ticks.zst → ticks-20261122T0400Z.zst, with .idx indexes); empty = no recording")
	fs.IntVar(&c.recordQueue, "record-queue", simulator.DefaultRecordQueue, "updates -record may hold while the disk is slow; more are dropped (tickerd_record_dropped_total)")
	fs.StringVar(&c.cluster.url, "nats", "", "join the tickerd cluster at this NATS `URL` (comma list for several servers; JetStream required), or embedded to start an in-process NATS server others join; empty = single node")
	fs.StringVar(&c.cluster.listen, "nats-listen", "127.0.0.1:4222", "client listen `address` of the embedded NATS server (-nats embedded)")
	fs.BoolVar(&c.cluster.interest, "nats-interest", false, "consume only the symbols this node's clients watch (large symbol universes); at least one node of the cluster should run without it")
	fs.StringVar(&c.cluster.store, "nats-store", "", "`directory` of the embedded NATS server's JetStream files; empty = a temporary one, removed on exit")
	fs.StringVar(&c.cluster.storage, "nats-storage", "file", "storage of the cluster stream and snapshots when this node creates them: file or memory")
	fs.DurationVar(&c.cluster.maxAge, "nats-max-age", time.Hour, "how long the cluster stream keeps updates (when this node creates it)")
	fs.Int64Var(&c.cluster.maxBytes, "nats-max-bytes", 1<<30, "most `bytes` the cluster stream keeps (when this node creates it)")
	fs.IntVar(&c.cluster.replicas, "nats-replicas", 1, "replicas of the cluster stream and buckets on a clustered JetStream (when this node creates them)")
	fs.DurationVar(&c.cluster.staleWait, "nats-stale-after", 2*time.Second, "mark served symbols status stale when out of sync with the cluster this long")
	fs.StringVar(&c.cluster.routeAddr, "nats-cluster-listen", "", "route `address` of the embedded NATS server, to form a NATS cluster with the other nodes' embedded servers (with -nats-routes; no single point of failure with three nodes and -nats-replicas 3)")
	fs.StringVar(&c.cluster.routes, "nats-routes", "", "comma `list` of the embedded NATS servers' route URLs (nats://HOST:PORT, this node's own may be included)")
	fs.BoolVar(&c.reuseport, "reuseport", false, "set SO_REUSEPORT on -addr so that several tickerd processes share it (use with -nats so they show the same data)")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, fmt.Errorf("unexpected argument %q (tickerd takes flags only)", pos[0])
	}
	if err := cli.ApplyEnv(fs, "TICKERD"); err != nil {
		return nil, err
	}
	return c, c.validate()
}

func (c *config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.simSymbols >= 1 && c.simSymbols <= 100_000, "-sim-symbols must be 1..100000, got %d", c.simSymbols)
	check(c.simRate > 0 && c.simRate <= 10_000_000, "-sim-rate must be > 0 and ≤ 10000000, got %g", c.simRate)
	check(c.maxHz > 0 && c.maxHz <= 10_000, "-max-hz must be > 0 and ≤ 10000, got %g", c.maxHz)
	check(c.maxSymbols >= 1, "-max-session-symbols must be ≥ 1, got %d", c.maxSymbols)
	check(c.heartbeat > 0, "-heartbeat must be > 0, got %v", c.heartbeat)
	check(c.stallTimeout > 0, "-stall-timeout must be > 0, got %v", c.stallTimeout)
	check(c.maxConnAge > 0, "-max-conn-age must be > 0, got %v", c.maxConnAge)
	check(c.maxSessionBPS == 0 || c.maxSessionBPS >= 1024, "-max-session-bps must be 0 (no cap) or ≥ 1024, got %d", c.maxSessionBPS)
	check(c.pacingMaxGap >= 0 && c.pacingMaxGap <= 10*time.Second, "-pacing-max-gap must be 0..10s, got %v", c.pacingMaxGap)
	check(c.streamPadding >= 0 && c.streamPadding <= 65536, "-stream-padding must be 0..65536, got %d", c.streamPadding)
	check(c.wsDeflateMax >= 0, "-ws-deflate-max-sessions must be ≥ 0, got %d", c.wsDeflateMax)
	check(c.maxBody > 0, "-max-ingest-body must be > 0, got %d", c.maxBody)
	check(c.delay >= time.Second, "-delay must be ≥ 1s, got %v", c.delay)
	check(c.delayBuffer >= 1<<20, "-delay-buffer must be ≥ 1048576 bytes, got %d", c.delayBuffer)
	check(c.staleAfter >= 0, "-stale-after must be ≥ 0, got %v", c.staleAfter)
	check(c.authTimeout > 0, "-auth-timeout must be > 0, got %v", c.authTimeout)
	check(c.maxOpRate > 0, "-max-op-rate must be > 0, got %g", c.maxOpRate)
	check(c.maxOpSymbols >= 1, "-max-op-symbols must be ≥ 1, got %d", c.maxOpSymbols)
	check(c.maxMessage >= 1024 && c.maxMessage <= 1<<20, "-max-message-bytes must be 1024..1048576, got %d", c.maxMessage)
	check((c.tlsCert == "") == (c.tlsKey == ""), "-tls-cert and -tls-key go together")
	check(c.recordQueue >= 1, "-record-queue must be ≥ 1, got %d", c.recordQueue)
	if c.record != "" {
		fi, err := os.Stat(filepath.Dir(c.record))
		check(err == nil && fi.IsDir(), "-record %q: directory %s does not exist", c.record, filepath.Dir(c.record))
	}
	c.cluster.validate(check)
	check(c.logFormat == "text" || c.logFormat == "json", "-log-format must be text or json, got %q", c.logFormat)
	var lvl slog.Level
	check(lvl.UnmarshalText([]byte(c.logLevel)) == nil, "-log-level must be debug, info, warn or error, got %q", c.logLevel)
	for _, f := range c.feeds.Values {
		kind, arg, _ := strings.Cut(f, ":")
		switch kind {
		case "sim", "none":
			check(arg == "", "-feed %q: %s takes no argument", f, kind)
		case "tcp":
			check(arg != "", "-feed %q: want tcp:ADDR, e.g. tcp:127.0.0.1:9000", f)
		case "replay":
			if _, err := simulator.ParseReplaySource(arg); err != nil {
				errs = append(errs, fmt.Errorf("-feed %q: %w", f, err))
			}
		case "csv":
			if _, _, err := parseCSVSpec(arg); err != nil {
				errs = append(errs, fmt.Errorf("-feed %q: %w", f, err))
			}
		case "ws":
			if _, err := parseWSSpec(arg); err != nil {
				errs = append(errs, fmt.Errorf("-feed %q: %w", feedsForLog([]string{f}), err))
			}
		default:
			errs = append(errs, fmt.Errorf("-feed %q: unknown source (want sim, none, replay:PATH[?speed=10x&loop=1], tcp:ADDR, csv:PATH[?MAPPING] or ws:URL?mapping=NAME)", f))
		}
	}
	return errors.Join(errs...)
}

func (c *config) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.logLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func main() {
	c, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tickerd:", err)
		os.Exit(2)
	}
	if err := run(c, c.logger(os.Stderr)); err != nil {
		fmt.Fprintln(os.Stderr, "tickerd:", err)
		os.Exit(1)
	}
}
