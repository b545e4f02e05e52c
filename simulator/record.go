package simulator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"tickerd/feed"
)

// Limits of Record.
const (
	// MaxStreamLine is the longest NDJSON line Record reads from a stream
	// (a batch of many snapshots can be long).
	MaxStreamLine = 64 << 20
	// urlSymbols is how many symbols Record puts in the stream URL; it
	// subscribes the rest with POST /v1/sessions/ID.
	urlSymbols = 500
)

// ErrNoSymbols is returned by Record when there is nothing to record.
var ErrNoSymbols = errors.New("simulator: no symbols to record")

// RecordConfig configures Record.
type RecordConfig struct {
	// URL is a tickerd base URL ("http://127.0.0.1:8080"). Required.
	URL string
	// Symbols are the symbols to record. Empty means every symbol that
	// GET URL/v1/symbols lists when Record starts.
	Symbols []string
	// Key is the bearer key sent with every request. Empty sends none.
	Key string
	// Client sends the requests; it must not time out whole streams. Nil
	// means a keep-alive client of Record's own.
	Client *http.Client
	// Log gets the server's error and close messages. Nil means
	// slog.Default().
	Log *slog.Logger
	// Progress, if set, is called from Record's goroutine after each
	// message written, with the counts so far. It must be quick.
	Progress func(RecordStats)
}

// RecordStats counts what Record wrote.
type RecordStats struct {
	Snapshots int64  // snapshot messages written
	Updates   int64  // update messages written
	Closed    string // the code of the server's close message, if it sent one
}

// Record subscribes to cfg.Symbols over GET URL/v1/stream (NDJSON) and
// writes every snapshot and update message to w, with its fields and ts,
// until ctx ends, the stream ends or the server sends close; then it
// returns nil. Other messages are not recorded (errors are logged). It
// returns an error when the stream cannot be opened or read, or w fails.
// It does not close w.
func Record(ctx context.Context, cfg RecordConfig, w *CaptureWriter) (RecordStats, error) {
	base, err := url.Parse(cfg.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return RecordStats{}, fmt.Errorf("simulator: bad tickerd URL %q: want http://host:port", cfg.URL)
	}
	rec := &recorder{cfg: cfg, base: strings.TrimSuffix(base.String(), "/"), client: cfg.Client, log: cfg.Log, w: w}
	if rec.client == nil {
		rec.client = newClient(0)
		defer rec.client.CloseIdleConnections()
	}
	if rec.log == nil {
		rec.log = slog.Default()
	}
	return rec.run(ctx)
}

type recorder struct {
	cfg    RecordConfig
	base   string
	client *http.Client
	log    *slog.Logger
	w      *CaptureWriter
	stats  RecordStats
	rest   []string // symbols still to subscribe once the session is known
	nextID int
}

// streamMsg is the part of a server message Record reads.
type streamMsg struct {
	Type    string                     `json:"type"`
	ID      int                        `json:"id"`
	Session string                     `json:"session"`
	Symbol  string                     `json:"symbol"`
	TS      int64                      `json:"ts"`
	Fields  map[string]json.RawMessage `json:"fields"`
	Code    string                     `json:"code"`
	Message string                     `json:"message"`
}

func (r *recorder) run(ctx context.Context) (RecordStats, error) {
	symbols := r.cfg.Symbols
	if len(symbols) == 0 {
		var err error
		if symbols, err = r.listSymbols(ctx); err != nil {
			if ctx.Err() != nil {
				return r.stats, nil
			}
			return r.stats, err
		}
	}
	if len(symbols) == 0 {
		return r.stats, ErrNoSymbols
	}
	first := symbols[:min(len(symbols), urlSymbols)]
	r.rest = symbols[len(first):]
	resp, err := r.get(ctx, "/v1/stream?symbols="+url.QueryEscape(strings.Join(first, ",")))
	if err != nil {
		if ctx.Err() != nil {
			return r.stats, nil
		}
		return r.stats, err
	}
	defer resp.Body.Close()
	r.log.Info("recording", "url", r.base, "symbols", len(symbols))
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var u feed.Update
	for n := 1; ; n++ {
		line, err := readLine(br, MaxStreamLine)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return r.stats, nil
			}
			return r.stats, fmt.Errorf("simulator: reading stream line %d: %w", n, err)
		}
		done, err := r.handleLine(ctx, line, &u)
		if err != nil || done {
			return r.stats, err
		}
	}
}

// handleLine handles one NDJSON line: one message or an array of them. It
// reports whether the server closed the stream.
func (r *recorder) handleLine(ctx context.Context, line []byte, u *feed.Update) (bool, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return false, nil
	}
	var msgs []streamMsg
	if line[0] == '[' {
		if err := json.Unmarshal(line, &msgs); err != nil {
			r.log.Warn("unreadable stream line", "err", err)
			return false, nil
		}
	} else {
		var m streamMsg
		if err := json.Unmarshal(line, &m); err != nil {
			r.log.Warn("unreadable stream line", "err", err)
			return false, nil
		}
		msgs = []streamMsg{m}
	}
	for i := range msgs {
		m := &msgs[i]
		switch m.Type {
		case "snapshot", "update":
			if err := r.write(m, u); err != nil {
				return false, err
			}
		case "session":
			if err := r.subscribeRest(ctx, m.Session); err != nil {
				return false, err
			}
		case "error":
			r.log.Warn("server error message", "code", m.Code, "symbol", m.Symbol, "message", m.Message)
		case "close":
			r.stats.Closed = m.Code
			r.log.Info("server closed the stream", "code", m.Code, "message", m.Message)
			return true, nil
		}
	}
	return false, nil
}

// write records one snapshot or update message.
func (r *recorder) write(m *streamMsg, u *feed.Update) error {
	if !feed.ValidSymbol(m.Symbol) {
		r.log.Warn("stream message with a bad symbol skipped", "type", m.Type, "symbol", m.Symbol)
		return nil
	}
	u.Reset()
	u.Symbol = m.Symbol
	u.TS = m.TS
	if u.TS <= 0 {
		u.TS = time.Now().UnixMicro()
	}
	for name, raw := range m.Fields {
		f, ok := feed.ParseField(name)
		if !ok {
			r.log.Warn("unknown field skipped", "symbol", m.Symbol, "field", name)
			continue
		}
		v, err := feed.ParseValue(f, raw)
		if err != nil {
			r.log.Warn("bad value skipped", "symbol", m.Symbol, "err", err)
			continue
		}
		u.Put(f, v)
	}
	if u.Set == 0 {
		return nil
	}
	if err := r.w.Write(u); err != nil {
		return err
	}
	if m.Type == "snapshot" {
		r.stats.Snapshots++
	} else {
		r.stats.Updates++
	}
	if r.cfg.Progress != nil {
		r.cfg.Progress(r.stats)
	}
	return nil
}

// subscribeRest subscribes the symbols that did not fit in the stream URL,
// in chunks, on the session the server just opened.
func (r *recorder) subscribeRest(ctx context.Context, session string) error {
	for len(r.rest) > 0 {
		chunk := r.rest[:min(len(r.rest), urlSymbols)]
		r.rest = r.rest[len(chunk):]
		r.nextID++
		body, err := json.Marshal(map[string]any{"op": "subscribe", "id": r.nextID, "symbols": chunk})
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+"/v1/sessions/"+url.PathEscape(session), bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		r.auth(req)
		resp, err := r.client.Do(req)
		if err != nil {
			return fmt.Errorf("simulator: subscribe: %w", err)
		}
		reply, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("simulator: subscribe: %s: %s", resp.Status, replyError(reply))
		}
	}
	return nil
}

// listSymbols returns the symbols of GET /v1/symbols.
func (r *recorder) listSymbols(ctx context.Context) ([]string, error) {
	resp, err := r.get(ctx, "/v1/symbols")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var reply struct {
		Symbols []string `json:"symbols"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxStreamLine)).Decode(&reply); err != nil {
		return nil, fmt.Errorf("simulator: GET %s/v1/symbols: unreadable reply: %w", r.base, err)
	}
	return reply.Symbols, nil
}

// get sends a GET and returns a 200 response, or an error naming the status.
func (r *recorder) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+path, nil)
	if err != nil {
		return nil, err
	}
	r.auth(req)
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("simulator: GET %s: %w", r.base+path, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		return nil, fmt.Errorf("simulator: GET %s: %s: %s", r.base+path, resp.Status, replyError(body))
	}
	return resp, nil
}

func (r *recorder) auth(req *http.Request) {
	if r.cfg.Key != "" {
		req.Header.Set("Authorization", "Bearer "+r.cfg.Key)
	}
}

// readLine returns the next line of br without its newline (the last one
// may lack it), or an error for a line longer than limit. The line is valid
// until the next call.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == nil {
		return line[:len(line)-1], nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		if len(line) > 0 && errors.Is(err, io.EOF) {
			return line, nil
		}
		return nil, err
	}
	buf := append([]byte(nil), line...)
	for {
		line, err = br.ReadSlice('\n')
		buf = append(buf, line...)
		if len(buf) > limit+1 {
			return nil, fmt.Errorf("line longer than %d bytes", limit)
		}
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return buf, nil
		default:
			return nil, err
		}
	}
}
