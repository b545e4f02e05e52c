package main

import (
	"bytes"
	"errors"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
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
		{"help mentions plot", []string{"-h"}, 0, "tickerbench plot -o OUT.png"},
		{"plot help", []string{"plot", "-h"}, 0, "Usage: tickerbench plot -o OUT.png REPORT.json..."},
		{"plot without -o", []string{"plot", "testdata/hold-2000.json"}, 2, "-o OUT.png is required"},
		{"plot without reports", []string{"plot", "-o", "latency.png"}, 2, "no reports given"},
		{"plot to a non-PNG", []string{"plot", "-o", "testdata/hold-2000.json", "testdata/hold-2000.json"}, 2, "must be a .png file"},
		{"plot bad flag", []string{"plot", "-out", "x.png", "testdata/hold-2000.json"}, 2, "flag provided but not defined: -out"},
		{"plot after flags", []string{"-quiet", "plot", "testdata/hold-2000.json"}, 2, "put plot first"},
		{"plot missing report", []string{"plot", "-o", "latency.png", "testdata/nope.json"}, 1, "testdata/nope.json: no such file"},
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

func TestPlot(t *testing.T) {
	out := filepath.Join(t.TempDir(), "latency.png")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"plot", "testdata/hold-2000.json", "-o", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "wrote "+out) {
		t.Errorf("stderr: %s", stderr.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if cfg.Width < 100 || cfg.Height < 100 {
		t.Errorf("PNG of %dx%d", cfg.Width, cfg.Height)
	}

	// A bad report among good ones: exit 1 and no file.
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"conns": 5, "latency": null}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(t.TempDir(), "none.png")
	stderr.Reset()
	if code := run([]string{"plot", "-o", out2, "testdata/hold-2000.json", bad}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), bad+": the report has no latency histogram") {
		t.Errorf("stderr: %s", stderr.String())
	}
	if _, err := os.Stat(out2); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s written despite the bad report (stat: %v)", out2, err)
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
