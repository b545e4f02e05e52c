package stream

import (
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tickerd/feed"
)

// What limits a session's data writes now (sessionStats.limit).
const (
	limitNone      = iota // sent as soon as its subscriptions allow
	limitPacing           // the server is busy: the pacer's gap (pacer.go)
	limitClient           // the client drains slower than the feed (drain.go)
	limitBandwidth        // the -max-session-bps cap
)

var limitNames = [...]string{limitNone: "", limitPacing: "pacing", limitClient: "client", limitBandwidth: "bandwidth"}

// AdminSession is one session in GET /v1/admin/sessions.
type AdminSession struct {
	ID         string    `json:"id"`
	Transport  string    `json:"transport"`
	Remote     string    `json:"remote"`
	Created    time.Time `json:"created"`
	AgeSeconds float64   `json:"ageSeconds"`
	Symbols    int       `json:"symbols"`
	Messages   int64     `json:"messages"`
	Bytes      int64     `json:"bytes"`
	// UnsentBytes is what the socket still held unsent after the last
	// write: the client (or its link) has not made room for it.
	UnsentBytes int64 `json:"unsentBytes"`
	// DrainBytesPerSec is how fast the client was seen to take data while
	// it had a backlog; 0 until measured.
	DrainBytesPerSec int64 `json:"drainBytesPerSec"`
	// SendRateHz is the most data writes per second the session makes now
	// (1 / least gap between two); null when nothing holds it back but its
	// subscriptions' maxHz.
	SendRateHz *float64 `json:"sendRateHz"`
	// LimitedBy names what sets SendRateHz: "pacing", "client" or
	// "bandwidth"; empty when unlimited.
	LimitedBy string `json:"limitedBy,omitempty"`
}

// AdminSessions is the reply of GET /v1/admin/sessions.
type AdminSessions struct {
	Count       int            `json:"count"`       // open sessions
	Shown       int            `json:"shown"`       // in Sessions (see limit)
	PacingGapMs float64        `json:"pacingGapMs"` // the server-wide gap now
	Sessions    []AdminSession `json:"sessions"`
}

// defaultAdminLimit bounds the sessions listed unless ?limit= says more.
const defaultAdminLimit = 1000

// serveAdminSessions lists the open sessions, busiest (most bytes) first:
// ?transport= filters, ?limit=N bounds the list (0 = all). Loopback peers
// only, unless an admin key is set, which is then required.
func (srv *Server) serveAdminSessions(w http.ResponseWriter, r *http.Request) {
	if msg, code := feed.CheckKey(r, srv.cfg.AdminKey, "admin", "-admin-key"); code != 0 {
		writeAdminError(w, code, msg)
		return
	}
	q := r.URL.Query()
	limit := defaultAdminLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeAdminError(w, http.StatusBadRequest, "limit: want a whole number >= 0 (0 = all)")
			return
		}
		limit = n
	}
	transport := q.Get("transport")
	if transport != "" && !slices.Contains(transports, transport) {
		writeAdminError(w, http.StatusBadRequest, "transport: want one of "+strings.Join(transports, ", "))
		return
	}

	srv.mu.Lock()
	open := make([]*Session, 0, len(srv.sessions))
	for _, s := range srv.sessions {
		if transport == "" || s.transport == transport {
			open = append(open, s)
		}
	}
	total := len(srv.sessions)
	srv.mu.Unlock()

	now := time.Now()
	list := make([]AdminSession, len(open))
	for i, s := range open {
		list[i] = s.adminView(now)
	}
	slices.SortFunc(list, func(a, b AdminSession) int {
		if a.Bytes != b.Bytes {
			if a.Bytes > b.Bytes {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	if limit > 0 && len(list) > limit {
		list = list[:limit]
	}
	reply := AdminSessions{
		Count: total, Shown: len(list), Sessions: list,
		PacingGapMs: float64(srv.pace.Gap()) / float64(time.Millisecond),
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(reply)
}

func (s *Session) adminView(now time.Time) AdminSession {
	s.mu.Lock()
	symbols := len(s.subs)
	s.mu.Unlock()
	v := AdminSession{
		ID: s.id, Transport: s.transport, Remote: s.remote,
		Created: s.created.UTC(), AgeSeconds: now.Sub(s.created).Seconds(),
		Symbols: symbols, Messages: s.stats.messages.Load(), Bytes: s.stats.bytes.Load(),
		UnsentBytes: s.stats.queued.Load(), DrainBytesPerSec: s.stats.drainBPS.Load(),
	}
	if hz, ok := s.stats.rate(); ok {
		v.SendRateHz = &hz
		v.LimitedBy = limitNames[s.stats.limit.Load()]
	}
	return v
}

// rate returns the session's data writes per second limit, if it has one.
func (st *sessionStats) rate() (float64, bool) {
	gap := st.gap.Load()
	if gap <= 0 {
		return 0, false
	}
	return float64(time.Second) / float64(gap), true
}

func writeAdminError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// rateBuckets are the bounds of tickerd_session_send_rate_hz.
var rateBuckets = []float64{0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200}

// rateCollector is tickerd_session_send_rate_hz: at each scrape, the
// distribution over open sessions of their current limit on data writes
// per second. Sessions nothing holds back count in +Inf only. Computing it
// at scrape costs the hot path nothing.
type rateCollector struct {
	srv  *Server
	desc *prometheus.Desc
}

func newRateCollector(srv *Server) *rateCollector {
	return &rateCollector{srv: srv, desc: prometheus.NewDesc("tickerd_session_send_rate_hz",
		"Open sessions by their current limit on data writes per second (adaptive rate: pacing, client drain, bandwidth cap); sessions sent to as fast as their maxHz allows are in +Inf only.",
		nil, nil)}
}

func (c *rateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *rateCollector) Collect(ch chan<- prometheus.Metric) {
	counts := make(map[float64]uint64, len(rateBuckets))
	var n uint64
	var sum float64
	c.srv.mu.Lock()
	for _, s := range c.srv.sessions {
		n++
		hz, ok := s.stats.rate()
		if !ok {
			continue
		}
		sum += hz
		for _, b := range rateBuckets {
			if hz <= b {
				counts[b]++
			}
		}
	}
	c.srv.mu.Unlock()
	if math.IsInf(sum, 0) || math.IsNaN(sum) {
		sum = 0
	}
	ch <- prometheus.MustNewConstHistogram(c.desc, n, sum, counts)
}
