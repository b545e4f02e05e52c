package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"tickerd/feed"
)

// Defaults of PosterConfig.
const (
	DefaultPostInterval = 10 * time.Millisecond
	DefaultMaxBatch     = 1 << 20
)

// postAttempts is how many times a batch is sent before it is dropped, when
// the server cannot be reached or answers 5xx.
const postAttempts = 3

// PosterConfig configures a Poster.
type PosterConfig struct {
	// URL is a tickerd base URL ("http://127.0.0.1:8080"); updates are
	// posted to URL/v1/ingest. Required.
	URL string
	// Key is the bearer key sent with every request. Empty sends none.
	Key string
	// Interval is how often pending updates are posted.
	// Zero means DefaultPostInterval (10 ms).
	Interval time.Duration
	// MaxBatch is the most bytes of NDJSON in one request; Apply blocks
	// while a full batch waits for the one in flight. Zero means
	// DefaultMaxBatch (1 MiB).
	MaxBatch int
	// Client sends the requests. Nil means a keep-alive client of the
	// Poster's own, with a 30 s timeout per request.
	Client *http.Client
	// Log gets a line per failed request and per reply with rejected
	// lines. Nil means slog.Default().
	Log *slog.Logger
}

// PostStats counts what a Poster did.
type PostStats struct {
	Requests int64 // requests answered 200
	Accepted int64 // lines the server accepted
	Rejected int64 // lines the server rejected
	Dropped  int64 // updates given up on: request failed, or applied after a fatal error or Close
}

// Poster is a feed.Sink that posts updates to a tickerd's POST /v1/ingest
// as NDJSON batches, one every Interval, from a goroutine of its own over a
// keep-alive connection. A batch the server cannot take is retried a few
// times, then dropped and logged. A 401, 403 or 404 reply is fatal: the
// Poster stops posting, closes Failed() and Close returns the error.
// Apply and Stats are safe for concurrent use.
type Poster struct {
	cfg      PosterConfig
	endpoint string
	client   *http.Client
	ownsConn bool
	log      *slog.Logger

	ctx    context.Context // ends in-flight requests when Close gives up
	cancel context.CancelFunc
	kick   chan struct{} // capacity 1: a full batch is waiting
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when the posting goroutine returns
	failed chan struct{} // closed on a fatal error

	mu       sync.Mutex
	space    *sync.Cond // signalled when the pending batch is taken
	pending  []byte
	spare    []byte
	nPending int64
	closed   bool
	fatal    error
	stats    PostStats
}

// NewPoster checks cfg and starts a Poster; Close stops it.
func NewPoster(cfg PosterConfig) (*Poster, error) {
	base, err := url.Parse(cfg.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("simulator: bad tickerd URL %q: want http://host:port", cfg.URL)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultPostInterval
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	p := &Poster{
		cfg:      cfg,
		endpoint: strings.TrimSuffix(base.String(), "/") + "/v1/ingest",
		client:   cfg.Client,
		log:      cfg.Log,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		failed:   make(chan struct{}),
	}
	if p.client == nil {
		p.client, p.ownsConn = newClient(30*time.Second), true
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.space = sync.NewCond(&p.mu)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	go p.loop()
	return p, nil
}

// newClient returns a keep-alive HTTP client; timeout zero means none (for
// streams).
func newClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
		},
	}
}

// Apply queues u for the next batch; it blocks while the pending batch is
// full and the previous one is still in flight. It reports whether u was
// queued (false: u is malformed, or the Poster is closed or failed); it
// cannot know whether u changes the server's record. It does not keep u.
func (p *Poster) Apply(u *feed.Update) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.pending) >= p.cfg.MaxBatch && !p.closed && p.fatal == nil {
		p.space.Wait()
	}
	if p.closed || p.fatal != nil {
		p.stats.Dropped++
		return false
	}
	n := len(p.pending)
	b, err := appendLine(p.pending, u, false)
	if err != nil {
		p.pending = b[:n]
		p.stats.Dropped++
		return false
	}
	p.pending = b
	p.nPending++
	if len(p.pending) >= p.cfg.MaxBatch {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// Stats returns the counts so far.
func (p *Poster) Stats() PostStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Failed is closed when a fatal reply (401, 403, 404) stops the Poster.
func (p *Poster) Failed() <-chan struct{} { return p.failed }

// Err returns the fatal error, if any.
func (p *Poster) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fatal
}

// Close posts what is pending and stops the Poster; updates applied later
// are dropped. If ctx ends first, the request in flight is abandoned and
// ctx.Err() returned. Otherwise Close returns the fatal error, if any. It
// is safe to call twice.
func (p *Poster) Close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stop)
		p.space.Broadcast()
	}
	p.mu.Unlock()
	var err error
	select {
	case <-p.done:
	case <-ctx.Done():
		p.cancel()
		<-p.done
		err = ctx.Err()
	}
	p.cancel()
	if p.ownsConn {
		p.client.CloseIdleConnections()
	}
	if ferr := p.Err(); ferr != nil {
		return ferr
	}
	return err
}

// loop posts the pending batch every Interval, or sooner when it is full,
// until Close; then it posts what is left.
func (p *Poster) loop() {
	defer close(p.done)
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		var stopping bool
		select {
		case <-t.C:
		case <-p.kick:
		case <-p.stop:
			stopping = true
		}
		p.mu.Lock()
		batch, n := p.pending, p.nPending
		p.pending, p.spare, p.nPending = p.spare[:0], nil, 0
		p.space.Broadcast()
		p.mu.Unlock()
		if n > 0 {
			p.post(batch, n)
		}
		p.mu.Lock()
		p.spare = batch[:0]
		fatal := p.fatal != nil
		p.mu.Unlock()
		if stopping || fatal {
			return
		}
	}
}

// post sends one batch of n updates, retrying transient failures.
func (p *Poster) post(batch []byte, n int64) {
	var err error
	for attempt := 1; attempt <= postAttempts; attempt++ {
		if attempt > 1 {
			select {
			case <-time.After(time.Duration(attempt-1) * 100 * time.Millisecond):
			case <-p.ctx.Done():
			}
		}
		var retry bool
		retry, err = p.send(batch, n)
		if err == nil || !retry || p.ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		p.log.Warn("ingest batch dropped", "url", p.endpoint, "updates", n, "err", err)
		p.mu.Lock()
		p.stats.Dropped += n
		p.mu.Unlock()
	}
}

// send posts one batch; retry says whether trying again may help.
func (p *Poster) send(batch []byte, n int64) (retry bool, err error) {
	req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, p.endpoint, bytes.NewReader(batch))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if p.cfg.Key != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.Key)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return true, fmt.Errorf("reading reply: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden,
		resp.StatusCode == http.StatusNotFound:
		err := fmt.Errorf("simulator: POST %s: %s: %s", p.endpoint, resp.Status, replyError(body))
		p.mu.Lock()
		if p.fatal == nil {
			p.fatal = err
			close(p.failed)
			p.space.Broadcast()
		}
		p.mu.Unlock()
		return false, err
	default:
		return resp.StatusCode >= 500, fmt.Errorf("%s: %s", resp.Status, replyError(body))
	}
	var reply feed.IngestReply
	if err := json.Unmarshal(body, &reply); err != nil {
		return false, fmt.Errorf("unreadable reply: %w", err)
	}
	p.mu.Lock()
	p.stats.Requests++
	p.stats.Accepted += int64(reply.Accepted)
	p.stats.Rejected += int64(reply.Rejected)
	p.mu.Unlock()
	if reply.Rejected > 0 {
		attrs := []any{"url", p.endpoint, "updates", n, "accepted", reply.Accepted, "rejected", reply.Rejected}
		if len(reply.Errors) > 0 {
			attrs = append(attrs, "line", reply.Errors[0].Line, "error", reply.Errors[0].Error)
		}
		p.log.Warn("ingest rejected lines", attrs...)
	}
	return false, nil
}

// replyError returns the "error" of a JSON error reply, or the body cut
// short.
func replyError(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
