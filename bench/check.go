package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"tickerd/feed"
)

// snapState is one symbol of GET /v1/snapshot.
type snapState struct {
	seq  int64
	vals [feed.NumFields]string
}

// snapChunk is how many symbols one snapshot request asks for.
const snapChunk = 100

// check compares every open session's view with the server's snapshot.
//
// A view converges when it reaches the seq the server's snapshot had when
// fetched, within one throttle interval plus 1 s (the contract's window);
// when it is seen at exactly that seq, every field must be equal. Holding
// views to the snapshot's seq rather than requiring equality at one instant
// keeps the check meaningful while a feed is still running; once the feed
// is quiet it is plain equality. A slow reader's window is longer by the
// time its queued bytes take to drain (Config.slowDrain).
func (r *runner) check(ctx context.Context) *Check {
	c := &Check{}
	settle := r.cfg.Settle
	if settle <= 0 {
		settle = r.cfg.throttle() + time.Second
	}
	if !sleepUntil(ctx, time.Now().Add(settle)) {
		return c
	}
	bySite := map[string][]string{}
	for _, s := range r.sessions {
		if s.connected.Load() && !s.failed.Load() {
			bySite[s.url] = append(bySite[s.url], s.symbols...)
		}
	}
	snaps := map[string]map[string]*snapState{}
	for site, syms := range bySite {
		slices.Sort(syms)
		m, err := fetchSnapshots(ctx, site, slices.Compact(syms))
		if err != nil {
			c.SnapshotErrors++
			c.example("snapshot %s: %v", site, err)
			continue
		}
		snaps[site] = m
	}
	// The snapshots hold updates ingested up to the end of the fetch, which
	// can take a while for many symbols on a busy server: the window counts
	// from there.
	fetched := time.Now()
	type pair struct {
		s        *session
		i        int
		want     *snapState
		deadline time.Time
	}
	window := fetched.Add(r.cfg.throttle() + time.Second)
	slowWindow := window.Add(r.cfg.slowDrain())
	var pending []pair
	for _, s := range r.sessions {
		m, ok := snaps[s.url]
		if !ok || !s.connected.Load() || s.failed.Load() {
			continue
		}
		deadline := window
		if s.slow {
			deadline = slowWindow
		}
		for i, sym := range s.symbols {
			c.Pairs++
			if p := (pair{s, i, m[sym], deadline}); !c.judge(p.s, p.i, p.want) {
				pending = append(pending, p)
			}
		}
	}
	// Each pair gets until its deadline, then one last look.
	for len(pending) > 0 && sleepUntil(ctx, time.Now().Add(50*time.Millisecond)) {
		now := time.Now()
		pending = slices.DeleteFunc(pending, func(p pair) bool {
			if c.judge(p.s, p.i, p.want) {
				return true
			}
			if now.Before(p.deadline) {
				return false
			}
			seq, _ := p.s.view(p.i)
			c.Lagging++
			c.example("session %d %s: seq %d, server had %d", p.s.index, p.s.symbols[p.i], seq, p.want.seq)
			return true
		})
	}
	for _, p := range pending { // cut short by ctx
		if !c.judge(p.s, p.i, p.want) {
			c.Lagging++
		}
	}
	return c
}

// judge compares one pair; it reports false while the view is behind.
func (c *Check) judge(s *session, i int, want *snapState) bool {
	seq, vals := s.view(i)
	sym := s.symbols[i]
	switch {
	case want == nil && seq == 0:
		c.CaughtUp++
		c.Compared++
	case want == nil:
		c.Diverged++
		c.example("session %d %s: seq %d, but the server has no data", s.index, sym, seq)
	case seq < want.seq:
		return false
	case seq > want.seq:
		c.CaughtUp++
	case vals == want.vals:
		c.CaughtUp++
		c.Compared++
	default:
		c.CaughtUp++
		c.Diverged++
		var diff []string
		for f := range feed.NumFields {
			if vals[f] != want.vals[f] {
				diff = append(diff, fmt.Sprintf("%s %q, server %q", f, vals[f], want.vals[f]))
			}
		}
		c.example("session %d %s seq %d: %s", s.index, sym, seq, strings.Join(diff, "; "))
	}
	return true
}

func (c *Check) example(format string, a ...any) {
	if len(c.Examples) < maxExamples {
		c.Examples = append(c.Examples, fmt.Sprintf(format, a...))
	}
}

// view returns a copy of the session's view of its i-th symbol.
func (s *session) view(i int) (int64, [feed.NumFields]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seqs[i], s.vals[i]
}

// fetchSnapshots returns GET base/v1/snapshot for syms: symbol -> state, a
// nil state for symbols the server reports without data.
func fetchSnapshots(ctx context.Context, base string, syms []string) (map[string]*snapState, error) {
	out := make(map[string]*snapState, len(syms))
	for chunk := range slices.Chunk(syms, snapChunk) {
		q := make([]string, len(chunk))
		for i, s := range chunk {
			q[i] = url.QueryEscape(s)
		}
		var body struct {
			Snapshots []json.RawMessage `json:"snapshots"`
			Errors    []struct {
				Symbol string `json:"symbol"`
				Code   string `json:"code"`
			} `json:"errors"`
		}
		u := strings.TrimSuffix(base, "/") + "/v1/snapshot?symbols=" + strings.Join(q, ",")
		if err := getJSON(ctx, u, &body); err != nil {
			return nil, err
		}
		var d Decoder
		for _, raw := range body.Snapshots {
			var err error
			derr := d.Frame(raw, func(m *Msg) {
				st := &snapState{seq: m.Seq}
				if m.Fields != nil {
					err = applyFields(&st.vals, m.Fields)
				}
				out[string(m.Symbol)] = st
			})
			if derr != nil {
				return nil, fmt.Errorf("bench: snapshot: %w", derr)
			}
			if err != nil {
				return nil, fmt.Errorf("bench: snapshot fields: %w", err)
			}
		}
	}
	return out, nil
}
