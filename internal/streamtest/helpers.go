package streamtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// WaitFor polls fn until it returns nil or timeout passes, then fails the
// test with fn's last error.
func WaitFor(t testing.TB, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Snapshot fetches GET /v1/snapshot for symbols (all when none) as views.
func Snapshot(ctx context.Context, base string, symbols ...string) (map[string]Symbol, error) {
	u := base + "/v1/snapshot"
	if len(symbols) > 0 {
		u += "?symbols=" + url.QueryEscape(strings.Join(symbols, ","))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	var body struct {
		Snapshots []Msg `json:"snapshots"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	out := make(map[string]Symbol, len(body.Snapshots))
	for _, m := range body.Snapshots {
		out[m.Symbol] = Symbol{Seq: m.Seq, Fields: m.Fields}
	}
	return out, nil
}

// Converged compares a client's view of the symbols in want (each with the
// field names it subscribed, nil for all) against the server's snapshot.
// Symbols without data on the server must be absent from the view.
func Converged(view, server map[string]Symbol, want map[string][]string) error {
	for sym, fields := range want {
		srv, has := server[sym]
		got, seen := view[sym]
		if !has {
			if seen {
				return fmt.Errorf("%s: client has data the server does not", sym)
			}
			continue
		}
		if !seen {
			return fmt.Errorf("%s: no snapshot received (server seq %d)", sym, srv.Seq)
		}
		if got.Seq > srv.Seq {
			return fmt.Errorf("%s: client seq %d ahead of server %d", sym, got.Seq, srv.Seq)
		}
		exp := srv.Fields
		if fields != nil {
			exp = make(map[string]string)
			for _, f := range fields {
				if v, ok := srv.Fields[f]; ok {
					exp[f] = v
				}
			}
		}
		if len(got.Fields) != len(exp) {
			return fmt.Errorf("%s: client has %d fields %v, server %d %v", sym, len(got.Fields), got.Fields, len(exp), exp)
		}
		for f, v := range exp {
			if got.Fields[f] != v {
				return fmt.Errorf("%s.%s: client %q, server %q (client seq %d, server %d)", sym, f, got.Fields[f], v, got.Seq, srv.Seq)
			}
		}
	}
	return nil
}

// All is the want of Converged for symbols subscribed with every field.
func All(symbols ...string) map[string][]string {
	m := make(map[string][]string, len(symbols))
	for _, s := range symbols {
		m[s] = nil
	}
	return m
}

// SyncBuffer is a bytes.Buffer that a test may read while another
// goroutine (a logger, a child process's output copier) writes it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
