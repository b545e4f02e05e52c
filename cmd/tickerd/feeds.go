package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"tickerd/feed"
)

// The feed adapters that take more than an address: each has a parse
// function (for validate, so a bad -feed is exit status 2) and a start
// function (for startFeed).

// feedsForLog lists -feed specs for a log line: a ws URL's query and user
// info may hold credentials, so a ws spec shows scheme, host and path only.
func feedsForLog(specs []string) string {
	out := make([]string, len(specs))
	for i, spec := range specs {
		out[i] = spec
		if arg, ok := strings.CutPrefix(spec, "ws:"); ok {
			if u, err := url.Parse(arg); err == nil {
				out[i] = "ws:" + u.Scheme + "://" + u.Host + u.Path
			} else {
				out[i] = "ws:(unparsable URL)"
			}
		}
	}
	return strings.Join(out, ",")
}

// parseCSVSpec parses the argument of -feed csv:PATH[?MAPPING].
func parseCSVSpec(arg string) (path string, m feed.CSVMapping, err error) {
	path, query, _ := strings.Cut(arg, "?")
	if path == "" {
		return "", m, errors.New("no file: want csv:PATH[?symbol=COL&FIELD=COL&ts=COL&ignore=COL,...]")
	}
	if _, err := os.Stat(path); err != nil {
		return "", m, err
	}
	m, err = feed.ParseCSVMapping(query)
	return path, m, err
}

// csvLoggedErrors is how many rejected rows a CSV load logs one by one.
const csvLoggedErrors = 10

// startCSV maps the file's header now, so that a header the mapping does
// not fit stops tickerd with a clear error, then loads the rows once under
// wg and logs the counts.
func startCSV(ctx context.Context, wg *sync.WaitGroup, arg string, sink feed.Sink, m *feed.Metrics, log *slog.Logger) error {
	path, mapping, err := parseCSVSpec(arg)
	if err != nil {
		return fmt.Errorf("-feed csv:%s: %w", arg, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("-feed csv:%s: %w", arg, err)
	}
	a := &feed.CSVAdapter{Sink: sink, Counter: m.Counter("csv", feed.ReasonCSV), Mapping: mapping, MaxErrors: csvLoggedErrors}
	load, err := a.Open(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("-feed csv:%s: %w", arg, err)
	}
	log = log.With("adapter", "csv", "path", path)
	log.Info("csv load started")
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer f.Close()
		start := time.Now()
		res, err := load.Run(ctx)
		for _, e := range res.Errors {
			log.Warn("csv row rejected", "line", e.Line, "column", e.Column, "reason", e.Err.Reason, "err", e.Error())
		}
		attrs := []any{"accepted", res.Accepted, "rejected", res.Rejected, "seconds", time.Since(start).Seconds()}
		switch {
		case err != nil:
			log.Error("csv load stopped", append(attrs, "err", err)...)
		case res.Rejected > 0:
			log.Warn("csv load finished", attrs...)
		default:
			log.Info("csv load finished", attrs...)
		}
	}()
	return nil
}

// wsSpec is a parsed -feed ws:URL?mapping=...[&subscribe=...].
type wsSpec struct {
	url       string // what is dialled: the URL without tickerd's parameters
	mapping   *feed.Mapping
	subscribe [][]byte
}

// parseWSSpec parses the argument of -feed ws:URL?mapping=NAME|FILE
// [&subscribe=JSON|@FILE]... The parameters mapping and subscribe are
// tickerd's and are taken out of the URL; every other one is left as
// written for the upstream. subscribe may repeat; @FILE reads one message
// per non-blank line.
func parseWSSpec(arg string) (wsSpec, error) {
	var s wsSpec
	base, query, _ := strings.Cut(arg, "?")
	var keep []string
	mapping := ""
	for _, kv := range strings.Split(query, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "mapping", "subscribe":
		default:
			keep = append(keep, kv)
			continue
		}
		v, err := url.QueryUnescape(v)
		if err != nil {
			return s, fmt.Errorf("%s=: %w", k, err)
		}
		if k == "mapping" {
			mapping = v
			continue
		}
		msgs, err := subscribeMessages(v)
		if err != nil {
			return s, err
		}
		s.subscribe = append(s.subscribe, msgs...)
	}
	s.url = base
	if len(keep) > 0 {
		s.url += "?" + strings.Join(keep, "&")
	}
	u, err := url.Parse(s.url)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return s, errors.New("want ws:ws://HOST/PATH?mapping=NAME or ws:wss://HOST/PATH?mapping=NAME")
	}
	if mapping == "" {
		return s, fmt.Errorf("no mapping: add ?mapping=NAME (built in: %s) or ?mapping=PATH.json", strings.Join(feed.MappingNames(), ", "))
	}
	s.mapping, err = feed.LoadMapping(mapping)
	return s, err
}

// subscribeMessages reads the value of one subscribe= parameter: a JSON
// message, or @FILE with one per line.
func subscribeMessages(v string) ([][]byte, error) {
	if path, ok := strings.CutPrefix(v, "@"); ok {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("subscribe=@%s: %w", path, err)
		}
		var msgs [][]byte
		for i, ln := range strings.Split(string(data), "\n") {
			if ln = strings.TrimSpace(ln); ln == "" {
				continue
			}
			if !json.Valid([]byte(ln)) {
				return nil, fmt.Errorf("subscribe=@%s: line %d is not JSON", path, i+1)
			}
			msgs = append(msgs, []byte(ln))
		}
		return msgs, nil
	}
	if !json.Valid([]byte(v)) {
		// Not quoted back: a subscribe message may carry credentials.
		return nil, errors.New("a subscribe= message is not JSON (write + as %2B, and in TICKERD_FEED commas as %2C)")
	}
	return [][]byte{[]byte(v)}, nil
}

// startWS runs a WebSocket upstream under wg until ctx ends.
func startWS(ctx context.Context, wg *sync.WaitGroup, arg string, sink feed.Sink, conns func(int), m *feed.Metrics, log *slog.Logger) error {
	s, err := parseWSSpec(arg)
	if err != nil {
		return fmt.Errorf("-feed %s: %w", feedsForLog([]string{"ws:" + arg}), err)
	}
	a := &feed.WSUpstream{
		URL: s.url, Subscribe: s.subscribe, Mapping: s.mapping,
		Sink: sink, Counter: m.Counter("ws", feed.ReasonFrame), Log: log, Conns: conns,
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := a.Run(ctx); err != nil {
			log.Error("ws feed stopped", "err", err)
		}
	}()
	return nil
}
