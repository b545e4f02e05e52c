package bench

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quick(url string, transports ...string) Config {
	return Config{
		URLs: []string{url}, Transports: transports, Conns: 6, Symbols: 3,
		Duration: 300 * time.Millisecond, Rate: 0, Check: true, Settle: 100 * time.Millisecond, MaxHz: 10,
	}
}

func TestRunTransports(t *testing.T) {
	tests := []struct {
		name       string
		transports []string
	}{
		{"ws", []string{"ws"}},
		{"sse", []string{"sse"}},
		{"ndjson", []string{"ndjson"}},
		{"poll", []string{"poll"}},
		{"mixed", []string{"ws", "sse", "ndjson", "poll"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, url := newFake(t, "")
			cfg := quick(url, tt.transports...)
			var progress int
			cfg.Progress = func(Progress) { progress++ }
			if len(tt.transports) > 1 {
				cfg.Duration = 1100 * time.Millisecond // long enough for a progress line
			}
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if p := rep.Problems(); len(p) > 0 {
				t.Fatalf("problems: %q", p)
			}
			pairs := int64(cfg.Conns * cfg.Symbols)
			if got, want := rep.Messages["update"], pairs*int64(f.n-1); got != want {
				t.Errorf("updates %d, want %d", got, want)
			}
			if got := rep.Messages["snapshot"]; got != pairs {
				t.Errorf("snapshots %d, want %d", got, pairs)
			}
			if rep.Latency.Count() != rep.Messages["update"] || rep.Connect.Count() != int64(cfg.Conns) {
				t.Errorf("histograms: %d latencies, %d connects", rep.Latency.Count(), rep.Connect.Count())
			}
			if c := rep.Check; c == nil || c.Pairs != pairs || c.Compared != pairs {
				t.Errorf("check %+v, want all %d pairs compared", c, pairs)
			}
			if rep.Skipped != 0 {
				t.Errorf("%d seqs skipped; the fake sends every seq", rep.Skipped)
			}
			if rep.Connected != int64(cfg.Conns) || rep.Bytes == 0 || rep.Frames == 0 {
				t.Errorf("connected %d, %d bytes in %d frames", rep.Connected, rep.Bytes, rep.Frames)
			}
			if progress == 0 && len(tt.transports) > 1 {
				t.Error("no progress reported")
			}
		})
	}
}

func TestRunMisbehaviour(t *testing.T) {
	tests := []struct {
		mode  string
		check func(t *testing.T, r *Report)
	}{
		{"seq_backwards", func(t *testing.T, r *Report) {
			// Per session: seq 3 after 7, then 7 again.
			if r.Protocol["seq_not_increasing"] != 12 || r.Failed != 0 {
				t.Errorf("protocol %v, failed %d", r.Protocol, r.Failed)
			}
		}},
		{"no_snapshot", func(t *testing.T, r *Report) {
			if r.Protocol["update_before_snapshot"] != 6 || r.Check.Diverged != 6 {
				t.Errorf("protocol %v, check %+v", r.Protocol, r.Check)
			}
		}},
		{"error", func(t *testing.T, r *Report) {
			if r.ServerErrors["not_entitled"] != 6 {
				t.Errorf("server errors %v", r.ServerErrors)
			}
		}},
		{"bad_json", func(t *testing.T, r *Report) {
			if r.Protocol["decode"] != 6 {
				t.Errorf("protocol %v", r.Protocol)
			}
		}},
		{"close", func(t *testing.T, r *Report) {
			if r.Failed != 6 || r.Failures["closed_slow_consumer"] != 6 || r.CloseCodes["slow_consumer"] != 6 {
				t.Errorf("failed %d, failures %v, close codes %v", r.Failed, r.Failures, r.CloseCodes)
			}
		}},
		{"max_age", func(t *testing.T, r *Report) {
			if r.Failed != 0 || r.Reconnects != 6 || r.CloseCodes["max_age"] != 6 || !r.Check.OK() {
				t.Errorf("failed %d, reconnects %d, close codes %v, check %+v", r.Failed, r.Reconnects, r.CloseCodes, r.Check)
			}
		}},
	}
	for _, tt := range tests {
		for _, transport := range []string{"ws", "ndjson"} {
			t.Run(tt.mode+"/"+transport, func(t *testing.T) {
				f, url := newFake(t, tt.mode)
				f.ageOuts.Store(6)
				rep, err := Run(context.Background(), quick(url, transport))
				if err != nil {
					t.Fatal(err)
				}
				if len(rep.Problems()) == 0 && tt.mode != "max_age" {
					t.Error("a misbehaving server passed")
				}
				tt.check(t, rep)
			})
		}
	}
}

func TestRunConnectFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	for _, transport := range Transports {
		cfg := quick(url, transport)
		cfg.Universe = []string{"A", "B", "C"}
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Failed != 6 || rep.Failures["connect"] != 6 {
			t.Errorf("%s: failed %d, failures %v", transport, rep.Failed, rep.Failures)
		}
	}
}

func TestRunCancel(t *testing.T) {
	_, url := newFake(t, "")
	cfg := quick(url, "ws", "sse")
	cfg.Duration = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	cfg.SteadyStart = func() { time.AfterFunc(200*time.Millisecond, cancel) }
	done := make(chan *Report)
	go func() {
		rep, _ := Run(ctx, cfg)
		done <- rep
	}()
	select {
	case rep := <-done:
		if rep == nil || rep.Failed != 0 || rep.Connected != 6 {
			t.Fatalf("report after cancel: %+v", rep)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no url":        {Transports: []string{"ws"}, Conns: 1, Symbols: 1},
		"no conns":      {URLs: []string{"http://x"}, Transports: []string{"ws"}, Symbols: 1},
		"bad transport": {URLs: []string{"http://x"}, Transports: []string{"grpc"}, Conns: 1, Symbols: 1},
		"bad worker":    {URLs: []string{"http://x"}, Transports: []string{"ws"}, Conns: 1, Symbols: 1, Worker: 2, Workers: 2},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
