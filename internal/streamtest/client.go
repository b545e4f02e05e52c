// Package streamtest is a test client for tickerd's streaming transports
// and the conformance checks every transport must pass. A Conn keeps the
// view a real client would reconstruct (snapshot, then merged updates) and
// records every breach of the contract's per-message guarantees as it reads.
package streamtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Transports the client speaks.
const (
	WS     = "ws"
	SSE    = "sse"
	NDJSON = "ndjson"
	Poll   = "poll"
)

// Transports lists every streaming transport, for table tests.
var Transports = []string{WS, SSE, NDJSON, Poll}

// Msg is any server message; absent members stay zero.
type Msg struct {
	Type    string            `json:"type"`
	ID      json.RawMessage   `json:"id,omitempty"`
	Symbol  string            `json:"symbol,omitempty"`
	Symbols []string          `json:"symbols,omitempty"`
	Seq     uint64            `json:"seq,omitempty"`
	TS      int64             `json:"ts,omitempty"`
	Fields  map[string]string `json:"fields,omitempty"`
	Code    string            `json:"code,omitempty"`
	Message string            `json:"message,omitempty"`
	Session string            `json:"session,omitempty"`
	Resume  string            `json:"resume,omitempty"`
	Delayed bool              `json:"delayed,omitempty"`
}

// Decode splits one frame, line or event into its messages: a single JSON
// object or an array of them.
func Decode(b []byte) ([]Msg, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var ms []Msg
		err := json.Unmarshal(b, &ms)
		return ms, err
	}
	var m Msg
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return []Msg{m}, nil
}

// Symbol is a client's view of one symbol.
type Symbol struct {
	Seq    uint64
	Fields map[string]string
}

// Conn is one streaming session seen from the client side. Its methods are
// safe for concurrent use.
type Conn struct {
	Transport string
	base      string
	http      *http.Client
	ws        *websocket.Conn
	body      io.ReadCloser
	wsMu      sync.Mutex
	cancel    context.CancelFunc // ends a long-poll loop

	mu        sync.Mutex
	session   string
	resume    string
	lastEvent string
	view      map[string]*Symbol
	gone      map[string]bool // unsubscribed and acknowledged
	control   []Msg           // everything but snapshot, update and heartbeat
	data      int             // snapshot and update messages read
	bytes     int64           // frame, line, event or poll-reply payload bytes read
	latencies []time.Duration // read time - ts of updates, at most maxLatencies
	log       []Msg           // snapshot and update messages, at most maxLog
	processed uint64          // messages applied, heartbeats aside
	keepLog   bool            // keep log (Options.Log)
	// reseeded holds the seeded symbols whose first message after a
	// resume is still to come: it may resend a field or repeat the seq.
	reseeded   map[string]bool
	heartbeats int
	violations []string
	closed     *Msg
	err        error
	done       chan struct{}
}

// Dial opens a session on base (http://host:port) over transport with the
// given query (symbols, fields, maxHz, resume ...) and starts reading.
func Dial(ctx context.Context, base, transport string, q url.Values) (*Conn, error) {
	return DialHeader(ctx, base, transport, q, nil)
}

// DialHeader is Dial with extra request headers (Last-Event-ID, Origin).
func DialHeader(ctx context.Context, base, transport string, q url.Values, h http.Header) (*Conn, error) {
	return DialOptions(ctx, base, transport, q, Options{Header: h})
}

// Options are the less common settings of a Conn.
type Options struct {
	Header http.Header // extra request headers (Last-Event-ID, Origin)
	// ReadBPS, when positive, makes a slow reader: the connection reads at
	// most this many bytes per second, through a small socket receive
	// buffer, so the server's writes back up behind it.
	ReadBPS int
	// Seed is the view the client starts from: a resuming client keeps
	// what it had (take it from the old Conn's View).
	Seed map[string]Symbol
	// Log keeps the data messages for Data.
	Log bool
	// Processed is the count of messages the seeded view results from (a
	// resumed session's numbering goes on from it).
	Processed uint64
}

// DialOptions is Dial with Options.
func DialOptions(ctx context.Context, base, transport string, q url.Values, o Options) (*Conn, error) {
	h := o.Header
	netDial := (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	if o.ReadBPS > 0 {
		netDial = slowDialer(o.ReadBPS)
	}
	c := &Conn{Transport: transport, base: base, view: map[string]*Symbol{},
		gone: map[string]bool{}, done: make(chan struct{})}
	c.http = &http.Client{Transport: &http.Transport{DialContext: netDial, DisableCompression: true}}
	c.processed = o.Processed
	c.keepLog = o.Log
	c.reseeded = make(map[string]bool, len(o.Seed))
	for sym, v := range o.Seed {
		c.reseeded[sym] = true
		f := make(map[string]string, len(v.Fields))
		for k, x := range v.Fields {
			f[k] = x
		}
		c.view[sym] = &Symbol{Seq: v.Seq, Fields: f}
	}
	path := map[string]string{WS: "/v1/ws", SSE: "/v1/sse", NDJSON: "/v1/stream", Poll: "/v1/poll"}[transport]
	if path == "" {
		return nil, fmt.Errorf("streamtest: unknown transport %q", transport)
	}
	u := base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	if transport == WS {
		d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, NetDialContext: netDial}
		ws, resp, err := d.DialContext(ctx, "ws"+strings.TrimPrefix(u, "http"), h)
		if err != nil {
			if resp != nil {
				return nil, fmt.Errorf("streamtest: dial %s: %w (HTTP %d)", u, err, resp.StatusCode)
			}
			return nil, fmt.Errorf("streamtest: dial %s: %w", u, err)
		}
		c.ws = ws
		go c.readWS()
		return c, nil
	}
	if transport == Poll {
		first, err := c.pollOnce(ctx, u, h)
		if err != nil {
			return nil, err
		}
		pctx, cancel := context.WithCancel(context.Background())
		c.cancel = cancel
		go c.pollLoop(pctx, first)
		return c, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("streamtest: GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("streamtest: GET %s: HTTP %d", u, resp.StatusCode)
	}
	c.body = resp.Body
	if transport == SSE {
		go c.readSSE()
	} else {
		go c.readNDJSON()
	}
	return c, nil
}

// pollOnce makes one long-poll request and applies its messages; it
// returns the session id.
func (c *Conn) pollOnce(ctx context.Context, u string, h http.Header) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("streamtest: GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("streamtest: GET %s: HTTP %d: %s", u, resp.StatusCode, body)
	}
	var reply struct {
		Session  string            `json:"session"`
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		return "", fmt.Errorf("streamtest: poll reply %.80q: %w", body, err)
	}
	if reply.Messages == nil {
		c.violate("poll reply without a messages array")
	}
	for _, m := range reply.Messages {
		c.frame(m)
	}
	return reply.Session, nil
}

// pollLoop polls until ctx ends, the session ends (close message) or the
// server forgets it.
func (c *Conn) pollLoop(ctx context.Context, id string) {
	defer close(c.done)
	u := c.base + "/v1/poll?wait=5&session=" + url.QueryEscape(id)
	for {
		if _, err := c.pollOnce(ctx, u, nil); err != nil {
			if ctx.Err() != nil {
				err = io.EOF
			}
			c.end(err)
			return
		}
		if c.Closed() != nil {
			c.end(io.EOF)
			return
		}
	}
}

func (c *Conn) readWS() {
	defer close(c.done)
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.end(err)
			return
		}
		c.frame(b)
	}
}

func (c *Conn) readNDJSON() {
	defer close(c.done)
	sc := bufio.NewScanner(c.body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			c.frame(sc.Bytes())
		}
	}
	c.end(sc.Err())
}

func (c *Conn) readSSE() {
	defer close(c.done)
	sc := bufio.NewScanner(c.body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var data []byte
	var id string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != nil {
				c.mu.Lock()
				if id != "" {
					c.lastEvent = id
				}
				c.mu.Unlock()
				c.frame(data)
			}
			data, id = nil, ""
		case strings.HasPrefix(line, ":"):
			c.mu.Lock()
			c.heartbeats++
			c.mu.Unlock()
		case strings.HasPrefix(line, "data:"):
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")...)
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "event:"):
			c.violate("SSE events must be unnamed, got %q", line)
		}
	}
	c.end(sc.Err())
}

func (c *Conn) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		err = io.EOF
	}
	c.err = err
}

func (c *Conn) violate(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violateLocked(format, args...)
}

func (c *Conn) violateLocked(format string, args ...any) {
	if len(c.violations) < 100 {
		c.violations = append(c.violations, fmt.Sprintf(format, args...))
	}
}

// frame applies one frame's messages, checking the per-message guarantees.
func (c *Conn) frame(b []byte) {
	now := time.Now().UnixMicro()
	ms, err := Decode(b)
	if err != nil {
		c.violate("undecodable frame %.80q: %v", b, err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bytes += int64(len(b))
	for i := range ms {
		if m := &ms[i]; m.Type == "update" && m.TS > 0 && len(c.latencies) < maxLatencies {
			c.latencies = append(c.latencies, time.Duration(now-m.TS)*time.Microsecond)
		}
		c.applyLocked(&ms[i])
	}
}

// maxLatencies bounds the latencies a Conn keeps between TakeLatencies.
const maxLatencies = 100_000

// maxLog bounds the data messages a Conn keeps for Data.
const maxLog = 10_000

func (c *Conn) applyLocked(m *Msg) {
	if (m.Type == "snapshot" || m.Type == "update") && c.gone[m.Symbol] {
		// On WebSocket the ack follows any data in flight on the same
		// stream, so nothing may come after it. Over HTTP the ack is the
		// POST reply and data already collected may still arrive.
		if c.ws != nil {
			c.violateLocked("%s: %s seq %d after the unsubscribe ack", m.Symbol, m.Type, m.Seq)
		}
		return
	}
	if m.Type != "heartbeat" {
		c.processed++
	}
	if c.keepLog && (m.Type == "snapshot" || m.Type == "update") && len(c.log) < maxLog {
		c.log = append(c.log, *m)
	}
	switch m.Type {
	case "unsubscribed":
		for _, s := range m.Symbols {
			c.gone[s] = true
			delete(c.view, s)
		}
		c.control = append(c.control, *m)
	case "subscribed":
		for _, s := range m.Symbols {
			delete(c.gone, s)
		}
		c.control = append(c.control, *m)
	case "snapshot":
		c.data++
		delete(c.reseeded, m.Symbol)
		prev := c.view[m.Symbol]
		if prev != nil && m.Seq < prev.Seq {
			c.violateLocked("%s: snapshot seq %d after %d", m.Symbol, m.Seq, prev.Seq)
		}
		f := make(map[string]string, len(m.Fields))
		for k, v := range m.Fields {
			f[k] = v
		}
		c.view[m.Symbol] = &Symbol{Seq: m.Seq, Fields: f}
	case "update":
		c.data++
		prev := c.view[m.Symbol]
		resend := c.reseeded[m.Symbol]
		delete(c.reseeded, m.Symbol)
		switch {
		case prev == nil:
			c.violateLocked("%s: update seq %d before any snapshot", m.Symbol, m.Seq)
			return
		case m.Seq < prev.Seq, m.Seq == prev.Seq && !resend:
			c.violateLocked("%s: update seq %d after %d", m.Symbol, m.Seq, prev.Seq)
		}
		if len(m.Fields) == 0 {
			c.violateLocked("%s: empty update at seq %d", m.Symbol, m.Seq)
		}
		for k, v := range m.Fields {
			if old, ok := prev.Fields[k]; ok && old == v && !resend {
				c.violateLocked("%s: update seq %d carries unchanged %s=%s", m.Symbol, m.Seq, k, v)
			}
			prev.Fields[k] = v
		}
		prev.Seq = m.Seq
	case "heartbeat":
		c.heartbeats++
	case "session":
		c.session, c.resume = m.Session, m.Resume
		c.control = append(c.control, *m)
	case "close":
		c.closed = m
		c.control = append(c.control, *m)
	default:
		c.control = append(c.control, *m)
	}
}

// Send sends a client op: a WebSocket frame, or POST /v1/sessions/ID whose
// replies are recorded as if they had come on the stream.
func (c *Conn) Send(ctx context.Context, op any) error {
	b, err := json.Marshal(op)
	if err != nil {
		return err
	}
	return c.SendRaw(ctx, b)
}

// SendRaw sends the bytes of an op as they are.
func (c *Conn) SendRaw(ctx context.Context, b []byte) error {
	if c.ws != nil {
		c.wsMu.Lock()
		defer c.wsMu.Unlock()
		_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return c.ws.WriteMessage(websocket.TextMessage, b)
	}
	id := c.Session()
	if id == "" {
		return errors.New("streamtest: no session id yet")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/sessions/"+id, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("streamtest: POST session op: HTTP %d: %s", resp.StatusCode, body)
	}
	var ms []Msg
	if err := json.Unmarshal(body, &ms); err != nil {
		return fmt.Errorf("streamtest: POST session op reply %q: %w", body, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range ms {
		c.applyLocked(&ms[i])
	}
	// The reply is not part of the stream's numbering.
	c.processed -= uint64(len(ms))
	return nil
}

// Close ends the connection and waits for the reader.
func (c *Conn) Close() {
	switch {
	case c.ws != nil:
		c.ws.Close()
	case c.cancel != nil:
		c.cancel()
	default:
		c.body.Close()
	}
	<-c.done
}

// Done is closed when the reader has stopped.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Session returns the session id announced by the server ("" for WebSocket).
func (c *Conn) Session() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// Resume returns the resume token (SSE: the last event id).
func (c *Conn) Resume() (token, lastEventID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resume, c.lastEvent
}

// ResumeAt returns the resume token with the count of messages processed,
// "TOKEN.N", which tells a resume exactly what this client has.
func (c *Conn) ResumeAt() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%s.%d", c.resume, c.processed)
}

// View returns a copy of the client's view of every symbol.
func (c *Conn) View() map[string]Symbol {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]Symbol, len(c.view))
	for k, v := range c.view {
		f := make(map[string]string, len(v.Fields))
		for fk, fv := range v.Fields {
			f[fk] = fv
		}
		out[k] = Symbol{Seq: v.Seq, Fields: f}
	}
	return out
}

// Control returns the control messages read so far (acks, errors, pongs,
// session, close).
func (c *Conn) Control() []Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Msg(nil), c.control...)
}

// Counts returns data messages and heartbeats read.
func (c *Conn) Counts() (data, heartbeats int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data, c.heartbeats
}

// Data returns the snapshot and update messages read so far (the first
// 10,000), in order, if the Conn was dialled with Options.Log.
func (c *Conn) Data() []Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Msg(nil), c.log...)
}

// Bytes returns the payload bytes read so far.
func (c *Conn) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// TakeLatencies returns the latencies (read time minus ts) of the updates
// read since the last call, and forgets them.
func (c *Conn) TakeLatencies() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.latencies
	c.latencies = nil
	return l
}

// Violations returns the breaches of the per-message guarantees seen.
func (c *Conn) Violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.violations...)
}

// Closed returns the close message, if the server sent one.
func (c *Conn) Closed() *Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Err returns why the reader stopped (nil while it runs).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
