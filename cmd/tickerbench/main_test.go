package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestUsageAndErrors(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"help", []string{"-h"}, 0, "tickerbench scenario NAME"},
		{"help lists scenarios", []string{"-h"}, 0, "footprint"},
		{"help lists hold", []string{"-h"}, 0, "hold "},
		{"help lists fanout-wide", []string{"-h"}, 0, "fanout-wide "},
		{"help lists mixed", []string{"-h"}, 0, "mixed "},
		{"help lists churn", []string{"-h"}, 0, "churn "},
		{"help shows -slow", []string{"-h"}, 0, "-slow fraction"},
		{"no url", []string{"-conns", "5"}, 2, "-url is required"},
		{"scenario flag in a load run", []string{"-url", "http://127.0.0.1:1", "-tickerd", "x"}, 2, "only for scenarios"},
		{"load flag in a scenario", []string{"scenario", "fanout", "-url", "http://127.0.0.1:1"}, 2, "not used by scenarios"},
		{"unknown scenario", []string{"-conns", "5", "scenario", "nope"}, 2, "unknown scenario"},
		{"stray argument", []string{"-url", "http://127.0.0.1:1", "extra"}, 2, "unexpected arguments"},
		{"bad flag", []string{"-conns", "many"}, 2, "invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr.String())
			}
			if strings.Contains(stderr.String(), "universe-file") {
				t.Errorf("usage shows a hidden flag:\n%s", stderr.String())
			}
		})
	}
}

func TestConfigFromFlags(t *testing.T) {
	fs, o := newFlags(&bytes.Buffer{})
	if err := fs.Parse([]string{"-url", "http://a:1, http://b:2", "-transport", "ws,sse", "-conns", "6000", "-slow", "0.1", "-slow-bps", "2048"}); err != nil {
		t.Fatal(err)
	}
	o.set = map[string]bool{"url": true, "transport": true, "conns": true}
	cfg, err := o.config()
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.URLs) != 2 || cfg.URLs[1] != "http://b:2" || len(cfg.Transports) != 2 {
		t.Errorf("urls %q transports %q", cfg.URLs, cfg.Transports)
	}
	if cfg.Check {
		t.Error("-check defaults to on above 5000 sessions")
	}
	if cfg.Slow != 0.1 || cfg.SlowBPS != 2048 {
		t.Errorf("slow %v at %d B/s", cfg.Slow, cfg.SlowBPS)
	}
}
