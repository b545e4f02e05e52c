package simulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"tickerd/client"
	"tickerd/feed"
)

// MaxStreamLine is the longest NDJSON line Record reads from a stream (a
// batch of many snapshots can be long).
const MaxStreamLine = 64 << 20

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
	// Progress, if set, is called after each message written, with the
	// counts so far, from one goroutine at a time (not the caller's). It
	// must be quick.
	Progress func(RecordStats)
}

// RecordStats counts what Record wrote.
type RecordStats struct {
	Snapshots int64  // snapshot messages written
	Updates   int64  // update messages written
	Closed    string // the code of the server's close message, if it sent one
}

// Record subscribes to cfg.Symbols over GET URL/v1/stream (NDJSON, with
// the client package) and writes every snapshot and update message to w,
// with its fields and ts, until ctx ends, the stream ends or the server
// sends close; then it returns nil. Other messages are not recorded
// (errors are logged). It returns an error when the stream cannot be
// opened or read, or w fails. It does not close w.
func Record(ctx context.Context, cfg RecordConfig, w *CaptureWriter) (RecordStats, error) {
	base, err := url.Parse(cfg.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return RecordStats{}, fmt.Errorf("simulator: bad tickerd URL %q: want http://host:port", cfg.URL)
	}
	rec := &streamRecorder{cfg: cfg, log: cfg.Log, w: w, failed: make(chan struct{})}
	if rec.log == nil {
		rec.log = slog.Default()
	}
	opts := []client.Option{
		client.WithTransport(client.NDJSON),
		client.WithoutReconnect(),
		client.WithMaxMessageSize(MaxStreamLine),
		client.WithLogger(rec.log),
		client.OnMessage(rec.message),
	}
	if cfg.Key != "" {
		opts = append(opts, client.WithToken(cfg.Key))
	}
	if cfg.Client != nil {
		opts = append(opts, client.WithHTTPClient(cfg.Client))
	}
	symbols := cfg.Symbols
	if len(symbols) == 0 {
		if symbols, err = client.FetchSymbols(ctx, cfg.URL, opts...); err != nil {
			if ctx.Err() != nil {
				return rec.stats, nil
			}
			return rec.stats, fmt.Errorf("simulator: listing symbols: %w", err)
		}
	}
	if len(symbols) == 0 {
		return rec.stats, ErrNoSymbols
	}
	c, err := client.Dial(ctx, cfg.URL, append(opts, client.WithSubscription(symbols))...)
	if err != nil {
		if ctx.Err() != nil {
			return rec.stats, nil
		}
		return rec.stats, fmt.Errorf("simulator: opening the stream: %w", err)
	}
	rec.log.Info("recording", "url", cfg.URL, "symbols", len(symbols))
	select {
	case <-ctx.Done():
	case <-c.Done():
	case <-rec.failed:
	}
	_ = c.Close() // from here on rec is ours alone
	if rec.err != nil {
		return rec.stats, rec.err
	}
	var ce *client.CloseError
	switch err := c.Err(); {
	case errors.Is(err, client.ErrClosed), errors.Is(err, client.ErrStreamEnded), errors.As(err, &ce):
		return rec.stats, nil
	default:
		return rec.stats, fmt.Errorf("simulator: reading the stream: %w", err)
	}
}

// streamRecorder writes what the client's reading goroutine hands it.
type streamRecorder struct {
	cfg    RecordConfig
	log    *slog.Logger
	w      *CaptureWriter
	stats  RecordStats
	u      feed.Update
	err    error         // the first write error; nothing is written after it
	failed chan struct{} // closed when err is set
}

// message is the client's OnMessage: it records snapshots and updates and
// notes the close code.
func (r *streamRecorder) message(m client.Message) {
	if r.err != nil {
		return
	}
	switch m.Type {
	case client.TypeSnapshot, client.TypeUpdate:
		if err := r.write(&m); err != nil {
			r.err = err
			close(r.failed)
		}
	case client.TypeClose:
		r.stats.Closed = m.Code
		r.log.Info("server closed the stream", "code", m.Code, "message", m.Text)
	}
}

// write records one snapshot or update message.
func (r *streamRecorder) write(m *client.Message) error {
	if !feed.ValidSymbol(m.Symbol) {
		r.log.Warn("stream message with a bad symbol skipped", "type", m.Type, "symbol", m.Symbol)
		return nil
	}
	u := &r.u
	u.Reset()
	u.Symbol = m.Symbol
	u.TS = m.TS
	if u.TS <= 0 {
		u.TS = time.Now().UnixMicro()
	}
	for name, text := range m.Fields {
		f, ok := feed.ParseField(name)
		if !ok {
			r.log.Warn("unknown field skipped", "symbol", m.Symbol, "field", name)
			continue
		}
		raw, _ := json.Marshal(text)
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
	if m.Type == client.TypeSnapshot {
		r.stats.Snapshots++
	} else {
		r.stats.Updates++
	}
	if r.cfg.Progress != nil {
		r.cfg.Progress(r.stats)
	}
	return nil
}
