package feed

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Health watches the feeds: when each last sent something, how many
// connections it has, and which symbols went stale. A symbol whose feed
// has been silent for StaleAfter gets status stale in the cache (pushed
// to subscribers like any change); its next update brings back the status
// it had before (trading if it had none). Its methods are safe for
// concurrent use.
type Health struct {
	sink       Sink
	staleAfter time.Duration
	clock      atomic.Int64 // Unix nanoseconds, ticked by Run: updates read it instead of the time

	mu    sync.Mutex
	feeds map[string]*feedState
	syms  map[string]*symState
	stale int // symbols now stale
}

type feedState struct {
	name  string
	last  atomic.Int64 // Unix nanoseconds of the last update; 0 = none yet
	conns atomic.Int64 // open connections, for adapters that have them
	stale bool         // silent past StaleAfter (guarded by Health.mu)
}

type symState struct {
	feed  *feedState
	last  int64  // Unix nanoseconds of its last update
	stale bool   // status set to stale by Health
	prev  string // its status before it went stale ("" = none)
}

// NewHealth returns a Health that sets statuses through sink (the cache).
// StaleAfter 0 turns stale detection off; feeds are still watched.
func NewHealth(sink Sink, staleAfter time.Duration) *Health {
	h := &Health{sink: sink, staleAfter: staleAfter, feeds: map[string]*feedState{}, syms: map[string]*symState{}}
	h.clock.Store(time.Now().UnixNano())
	return h
}

// Sink returns the sink a feed named name applies through: sink, with the
// feed's and each symbol's last update recorded.
func (h *Health) Sink(name string) Sink {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.feeds[name]
	if f == nil {
		f = &feedState{name: name}
		h.feeds[name] = f
	}
	return &healthSink{h: h, f: f}
}

// Connected tells Health that feed name gained (delta 1) or lost (-1) a
// connection.
func (h *Health) Connected(name string, delta int) {
	h.Sink(name).(*healthSink).f.conns.Add(int64(delta))
}

type healthSink struct {
	h *Health
	f *feedState
}

func (s *healthSink) Apply(u *Update) bool {
	h := s.h
	now := h.clock.Load()
	s.f.last.Store(now)
	if h.staleAfter == 0 {
		return h.sink.Apply(u) // no stale detection: no symbol to track
	}
	h.mu.Lock()
	st := h.syms[u.Symbol]
	if st == nil {
		if !ValidSymbol(u.Symbol) {
			h.mu.Unlock()
			return h.sink.Apply(u) // the cache's own checks decide
		}
		st = &symState{}
		h.syms[u.Symbol] = st
	}
	st.feed, st.last = s.f, now
	if !st.stale {
		h.mu.Unlock()
		return h.sink.Apply(u)
	}
	// Data is back: so is the status it had. Applied under h.mu, so that
	// a stale mark being applied cannot land after it.
	defer h.mu.Unlock()
	st.stale = false
	h.stale--
	if u.Set.Has(Status) {
		return h.sink.Apply(u)
	}
	prev := st.prev
	if prev == "" || prev == StatusStale {
		prev = StatusTrading
	}
	back := *u // the caller's update is not ours to change
	back.Put(Status, StatusValue(prev))
	return h.sink.Apply(&back)
}

// Run ticks Health's clock and marks stale symbols until ctx ends.
func (h *Health) Run(ctx context.Context, statusOf func(sym string) string) {
	tick := 100 * time.Millisecond
	if h.staleAfter > 0 {
		tick = min(tick, h.staleAfter/4)
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.clock.Store(now.UnixNano())
			if h.staleAfter > 0 {
				h.markStale(now, statusOf)
			}
		}
	}
}

// markStale sets status stale on every symbol whose feed has been silent
// for StaleAfter.
func (h *Health) markStale(now time.Time, statusOf func(sym string) string) {
	cutoff := now.Add(-h.staleAfter).UnixNano()
	var due []string
	h.mu.Lock()
	for _, f := range h.feeds {
		f.stale = f.last.Load() != 0 && f.last.Load() < cutoff
	}
	for sym, st := range h.syms {
		if !st.stale && st.feed != nil && st.feed.stale && st.last < cutoff {
			due = append(due, sym)
		}
	}
	h.mu.Unlock()
	var u Update
	for _, sym := range due {
		prev := ""
		if statusOf != nil {
			prev = statusOf(sym)
		}
		h.mu.Lock()
		if st := h.syms[sym]; !st.stale && st.last < cutoff { // else data came meanwhile
			st.stale, st.prev = true, prev
			h.stale++
			u.Reset()
			u.Symbol = sym
			u.Put(Status, StatusValue(StatusStale))
			h.sink.Apply(&u)
		}
		h.mu.Unlock()
	}
}

// FeedReport is one feed's health.
type FeedReport struct {
	Name        string     `json:"name"`
	LastMessage *time.Time `json:"lastMessage"` // nil: nothing yet
	Connections int64      `json:"connections"`
	Stale       bool       `json:"stale"` // silent past StaleAfter
}

// HealthReport is what /readyz shows.
type HealthReport struct {
	Feeds        []FeedReport `json:"feeds"`
	StaleSymbols int          `json:"staleSymbols"`
	Healthy      bool         `json:"healthy"` // no feed stale
}

// Report returns the feeds' health, sorted by name.
func (h *Health) Report() HealthReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := HealthReport{StaleSymbols: h.stale, Healthy: true, Feeds: []FeedReport{}}
	for _, f := range h.feeds {
		fr := FeedReport{Name: f.name, Connections: f.conns.Load(), Stale: f.stale}
		if ns := f.last.Load(); ns != 0 {
			t := time.Unix(0, ns).UTC()
			fr.LastMessage = &t
		}
		if f.stale {
			r.Healthy = false
		}
		r.Feeds = append(r.Feeds, fr)
	}
	sort.Slice(r.Feeds, func(i, j int) bool { return r.Feeds[i].Name < r.Feeds[j].Name })
	return r
}

// Collector returns the feeds' metrics: tickerd_feed_last_message_seconds
// and tickerd_feed_connections by feed, tickerd_stale_symbols.
func (h *Health) Collector() prometheus.Collector { return healthCollector{h} }

type healthCollector struct{ h *Health }

var (
	descFeedLast = prometheus.NewDesc("tickerd_feed_last_message_timestamp_seconds",
		"Unix time of the last update from each feed.", []string{"feed"}, nil)
	descFeedConns = prometheus.NewDesc("tickerd_feed_connections",
		"Open connections of each connection-based feed.", []string{"feed"}, nil)
	descStale = prometheus.NewDesc("tickerd_stale_symbols",
		"Symbols whose feed went silent past -stale-after (status stale).", nil, nil)
)

func (c healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descFeedLast
	ch <- descFeedConns
	ch <- descStale
}

func (c healthCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.h.Report()
	for _, f := range r.Feeds {
		if f.LastMessage != nil {
			ch <- prometheus.MustNewConstMetric(descFeedLast, prometheus.GaugeValue, float64(f.LastMessage.UnixNano())/1e9, f.Name)
		}
		ch <- prometheus.MustNewConstMetric(descFeedConns, prometheus.GaugeValue, float64(f.Connections), f.Name)
	}
	ch <- prometheus.MustNewConstMetric(descStale, prometheus.GaugeValue, float64(r.StaleSymbols))
}
