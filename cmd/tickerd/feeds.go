package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"tickerd/feed"
)

// The feed adapters that take more than an address: each has a parse
// function (for validate, so a bad -feed is exit status 2) and a start
// function (for startFeed).

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
