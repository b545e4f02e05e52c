package feed

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
)

// Sink takes normalized updates. It reports whether u changed anything.
// Apply must not keep u: the caller reuses it.
type Sink interface {
	Apply(u *Update) bool
}

// Metrics counts what the ingest adapters accept, reject and ignore.
type Metrics struct {
	Accepted *prometheus.CounterVec // labels: adapter
	Rejected *prometheus.CounterVec // labels: adapter, reason
	Ignored  *prometheus.CounterVec // labels: adapter
}

// NewMetrics registers the ingest counters with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tickerd_ingest_accepted_total",
			Help: "Updates accepted from feeds, by adapter (an accepted update may change nothing).",
		}, []string{"adapter"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tickerd_ingest_rejected_total",
			Help: "Feed lines rejected, by adapter and reason.",
		}, []string{"adapter", "reason"}),
		Ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tickerd_ingest_ignored_total",
			Help: "Upstream messages that a feed's filter passed over (acks, other event types), by adapter.",
		}, []string{"adapter"}),
	}
	reg.MustRegister(m.Accepted, m.Rejected, m.Ignored)
	return m
}

// Counter returns a Counter for one adapter, safe to use when m is nil.
// The rejection series of the four common reasons, plus those in extra,
// exist from the start with the value 0.
func (m *Metrics) Counter(adapter string, extra ...string) Counter {
	if m == nil {
		return Counter{}
	}
	for _, r := range append([]string{ReasonJSON, ReasonSymbol, ReasonField, ReasonValue}, extra...) {
		m.Rejected.WithLabelValues(adapter, r)
	}
	return Counter{m: m, adapter: adapter,
		accepted: m.Accepted.WithLabelValues(adapter), ignored: m.Ignored.WithLabelValues(adapter)}
}

// Counter counts one adapter's accepted and rejected lines.
type Counter struct {
	m        *Metrics
	adapter  string
	accepted prometheus.Counter
	ignored  prometheus.Counter
}

// Accept counts n accepted updates.
func (c Counter) Accept(n int) {
	if c.m != nil && n > 0 {
		c.accepted.Add(float64(n))
	}
}

// Ignore counts n messages that a feed's filter passed over.
func (c Counter) Ignore(n int) {
	if c.m != nil && n > 0 {
		c.ignored.Add(float64(n))
	}
}

// Reject counts one rejected line, labelled by the reason in err.
func (c Counter) Reject(err error) {
	if c.m == nil {
		return
	}
	reason := ReasonJSON
	var fe *Error
	if errors.As(err, &fe) {
		reason = fe.Reason
	}
	c.m.Rejected.WithLabelValues(c.adapter, reason).Inc()
}

// Defaults of IngestHandler.
const (
	DefaultMaxBody   = 8 << 20
	DefaultMaxErrors = 1000
)

// IngestHandler serves POST /v1/ingest: an NDJSON body, one update per line.
// Each line is validated on its own; a bad line is rejected alone and the
// others apply. The whole body is read (up to MaxBody) before any line is
// applied, so a 413 applies nothing.
type IngestHandler struct {
	Sink Sink
	// Key is the bearer key required of callers. Empty means only loopback
	// peers may ingest.
	Key string
	// MaxBody is the largest body accepted, after gzip decoding.
	// Zero means DefaultMaxBody.
	MaxBody int64
	// MaxErrors caps the per-line errors listed in one reply; the counts
	// stay exact. Zero means DefaultMaxErrors.
	MaxErrors int
	Counter   Counter
	Log       *slog.Logger // nil means slog.Default()
}

// LineError is one rejected line of an ingest reply.
type LineError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// IngestReply is the body of a 200 reply to POST /v1/ingest.
type IngestReply struct {
	Accepted  int         `json:"accepted"`
	Rejected  int         `json:"rejected"`
	Errors    []LineError `json:"errors"`
	Truncated bool        `json:"errorsTruncated,omitempty"`
}

func (h *IngestHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if msg, code := h.authorize(r); code != 0 {
		writeJSONError(w, code, msg)
		return
	}
	limit := h.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	if r.ContentLength > limit {
		writeJSONError(w, http.StatusRequestEntityTooLarge, "body over the limit")
		return
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, limit)
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(body)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "unreadable gzip body")
			return
		}
		defer zr.Close()
		body = io.LimitReader(zr, limit+1)
	}
	data, err := io.ReadAll(body)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe), int64(len(data)) > limit:
		writeJSONError(w, http.StatusRequestEntityTooLarge, "body over the limit")
		return
	case err != nil:
		writeJSONError(w, http.StatusBadRequest, "unreadable body: "+err.Error())
		return
	}
	reply := h.apply(data)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(reply)
}

func (h *IngestHandler) apply(data []byte) IngestReply {
	maxErrs := h.MaxErrors
	if maxErrs <= 0 {
		maxErrs = DefaultMaxErrors
	}
	reply := IngestReply{Errors: []LineError{}}
	var u Update
	for n := 1; len(data) > 0; n++ {
		ln := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			ln, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		ln = bytes.TrimSpace(ln)
		if len(ln) == 0 {
			continue
		}
		if err := ParseLine(ln, &u); err != nil {
			reply.Rejected++
			h.Counter.Reject(err)
			if len(reply.Errors) < maxErrs {
				reply.Errors = append(reply.Errors, LineError{Line: n, Error: err.Error()})
			} else {
				reply.Truncated = true
			}
			continue
		}
		u.TS = 0 // the server stamps its own ingest time
		h.Sink.Apply(&u)
		reply.Accepted++
	}
	h.Counter.Accept(reply.Accepted)
	return reply
}

// authorize returns a message and status when r may not ingest.
func (h *IngestHandler) authorize(r *http.Request) (string, int) {
	return CheckKey(r, h.Key, "ingest", "-ingest-key")
}

// CheckKey guards an operator endpoint (what, e.g. "ingest") with a bearer
// key: with key set, r must carry it; without, r must come from loopback
// (flag names the option that opens it to others). It returns a message and
// an HTTP status when r may not pass, "" and 0 when it may.
func CheckKey(r *http.Request, key, what, flag string) (string, int) {
	if key == "" {
		if !IsLoopback(r.RemoteAddr) {
			return what + " is open to loopback peers only (set " + flag + ")", http.StatusForbidden
		}
		return "", 0
	}
	tok, ok := BearerToken(r)
	if !ok {
		return "missing bearer key", http.StatusUnauthorized
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(key)) != 1 {
		return "bad bearer key", http.StatusUnauthorized
	}
	return "", 0
}

// BearerToken returns the token of an "Authorization: Bearer TOKEN" header.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(h[len(p):]), true
}

// IsLoopback reports whether a "host:port" remote address is a loopback one.
func IsLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
