package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"tickerd/feed"
)

// session is one client connection of a run and what it has seen. Its
// goroutine owns everything but the view, which the convergence check reads
// under mu.
type session struct {
	run       *runner
	index     int      // global session index: fixes its symbols and its URL
	url       string   // tickerd base URL
	transport string   // ws, sse, ndjson or poll
	slow      bool     // reads at Config.SlowBPS (slowConn)
	symbols   []string // sorted
	shard     *shard

	dec       Decoder
	msgFunc   func(*Msg) // s.msg, bound once
	onConnect func()     // reports the first connection attempt settled
	buf       []byte     // frame buffer, reused
	tally     tally
	recvUS    int64       // receive time of the frame being handled
	flushedUS int64       // time of the last flush into the shard
	closeCode string      // code of a close message received on this connection
	connected atomic.Bool // connected at least once
	failed    atomic.Bool // ended for good before the run did

	mu   sync.Mutex // guards seqs and vals against the convergence check
	seqs []int64    // last seq per symbol (index as in symbols); 0 = nothing yet
	vals [][feed.NumFields]string
}

// Errors a transport returns; session.loop turns them into failure kinds.
var (
	errEOF = errors.New("bench: stream ended without a close message")
)

// connectError is a failure before the stream was established.
type connectError struct {
	status int // HTTP status, 0 when the failure was below HTTP
	err    error
}

func (e *connectError) Error() string {
	if e.status != 0 {
		return fmt.Sprintf("bench: connect: HTTP status %d", e.status)
	}
	return fmt.Sprintf("bench: connect: %v", e.err)
}

func (e *connectError) Unwrap() error { return e.err }

// closedError is a stream the server ended with a close message.
type closedError struct{ code string }

func (e *closedError) Error() string { return "bench: closed by server: " + e.code }

// readError is a stream that broke after it was established. kind, when
// set, is its failure kind.
type readError struct {
	kind string
	err  error
}

func (e *readError) Error() string { return fmt.Sprintf("bench: read: %v", e.err) }

func (e *readError) Unwrap() error { return e.err }

// failureKind names a transport error for Report.Failures.
func failureKind(err error) string {
	var ce *connectError
	var cl *closedError
	var re *readError
	switch {
	case errors.As(err, &ce) && ce.status != 0:
		return fmt.Sprintf("status_%d", ce.status)
	case errors.As(err, &ce):
		return "connect"
	case errors.As(err, &re) && re.kind != "":
		return re.kind
	case errors.As(err, &cl):
		return "closed_" + cl.code
	case errors.Is(err, errEOF):
		return "eof"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "read"
}

// dial is a transport: it connects s, calls s.connectedAfter once the
// stream is subscribed, then hands every frame to s.frame until the stream
// ends. It returns nil only when ctx ends the stream.
type dial func(ctx context.Context, s *session) error

// loop runs the session until ctx is done, reconnecting after a max_age
// close. settled is called once, when the first connection attempt has
// succeeded or failed.
func (s *session) loop(ctx context.Context, d dial, settled func()) {
	once := sync.OnceFunc(settled)
	defer once()
	s.onConnect = once
	for {
		s.closeCode = ""
		err := d(ctx, s)
		s.shard.flush(&s.tally)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errEOF
		}
		var cl *closedError
		if errors.As(err, &cl) && cl.code == "max_age" {
			s.run.stats.reconnects.Add(1)
			continue
		}
		s.failed.Store(true)
		s.run.stats.failed.Add(1)
		s.shard.count(failures, failureKind(err))
		s.run.logf("session %d (%s %s): %v", s.index, s.transport, s.url, err)
		return
	}
}

// readBPS is the read rate of the session's connections in bytes per
// second; 0 = unthrottled.
func (s *session) readBPS() int {
	if s.slow {
		return s.run.cfg.slowBPS()
	}
	return 0
}

// connectedAfter records a successful connection that took d.
func (s *session) connectedAfter(d time.Duration) {
	if !s.connected.Swap(true) {
		s.run.stats.connected.Add(1)
	}
	s.run.stats.open.Add(1)
	s.shard.recordConnect(d.Microseconds())
	s.onConnect()
}

// disconnected undoes the open count of connectedAfter.
func (s *session) disconnected() { s.run.stats.open.Add(-1) }

// frame handles one frame received at recv (Unix µs): a message or an
// array of messages.
func (s *session) frame(data []byte, recv int64) {
	s.recvUS = recv
	s.tally.frames++
	s.tally.bytes += int64(len(data))
	if err := s.dec.Frame(data, s.msgFunc); err != nil {
		s.violation("decode")
	}
	s.maybeFlush()
}

// maybeFlush moves the tally into the shard when enough has accumulated
// or a flush interval has passed, so that progress stays current.
func (s *session) maybeFlush() {
	if len(s.tally.latency) >= flushAt || len(s.tally.snapshotAge) >= flushAt ||
		s.tally.frames >= flushAt || s.recvUS-s.flushedUS >= flushEveryUS {
		s.shard.flush(&s.tally)
		s.flushedUS = s.recvUS
	}
}

// flushEveryUS bounds how stale a session's counts in its shard may be.
const flushEveryUS = 250_000

func (s *session) violation(kind string) { s.shard.count(protocol, kind) }

// msg handles one decoded message.
func (s *session) msg(m *Msg) {
	s.tally.kinds[m.Kind]++
	switch m.Kind {
	case KindUpdate, KindSnapshot:
		s.data(m)
	case KindError:
		s.shard.count(serverErrs, string(m.Code))
		s.run.logf("session %d: server error %s for %q", s.index, m.Code, m.Symbol)
	case KindClose:
		s.closeCode = string(m.Code)
		s.shard.count(closeCodes, s.closeCode)
	case KindOther:
		if m.Type == nil {
			s.violation("missing_type")
		}
	}
}

// data handles an update or a snapshot: latency, seq order and the view.
func (s *session) data(m *Msg) {
	age := s.recvUS - m.TS
	if m.TS <= 0 {
		s.violation("missing_ts")
	} else if m.Kind == KindUpdate {
		s.tally.latency = append(s.tally.latency, age)
	} else {
		s.tally.snapshotAge = append(s.tally.snapshotAge, age)
	}
	i := s.find(m.Symbol)
	if i < 0 {
		s.violation("unexpected_symbol")
		return
	}
	check := s.vals != nil
	if check {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	last := s.seqs[i]
	switch {
	case m.Seq <= 0:
		s.violation("missing_seq")
	case m.Kind == KindUpdate && last == 0:
		s.violation("update_before_snapshot")
	case m.Kind == KindUpdate && m.Seq <= last:
		s.violation("seq_not_increasing")
	case m.Seq < last:
		s.violation("seq_backwards")
	}
	if m.Kind == KindUpdate && last > 0 && m.Seq > last+1 {
		s.tally.skipped += m.Seq - last - 1
	}
	s.seqs[i] = max(last, m.Seq)
	if !check {
		return
	}
	v := &s.vals[i]
	if m.Kind == KindSnapshot {
		*v = [feed.NumFields]string{}
	}
	if m.Fields == nil {
		if m.Kind == KindUpdate {
			s.violation("update_without_fields")
		}
		return
	}
	if err := applyFields(v, m.Fields); err != nil {
		s.violation(err.Error())
	}
}

// fieldError names a problem with a fields object; its text is the
// protocol violation's kind.
type fieldError string

func (e fieldError) Error() string { return string(e) }

// applyFields sets the values of a fields object into v, without
// allocating for values that did not change.
func applyFields(v *[feed.NumFields]string, raw []byte) error {
	var bad error
	err := EachField(raw, func(name, value []byte) error {
		f, ok := fieldOf(name)
		if !ok {
			bad = fieldError("unknown_field")
			return nil
		}
		if v[f] != string(value) {
			v[f] = string(value)
		}
		return nil
	})
	if err != nil {
		return fieldError("bad_fields")
	}
	return bad
}

// fieldOf maps a wire name to its field without allocating.
func fieldOf(name []byte) (feed.Field, bool) {
	for f := range feed.NumFields {
		if string(name) == f.String() {
			return f, true
		}
	}
	return 0, false
}

// find returns the index of sym in s.symbols, or -1.
func (s *session) find(sym []byte) int {
	lo, hi := 0, len(s.symbols)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.symbols[m] < string(sym) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(s.symbols) && s.symbols[lo] == string(sym) {
		return lo
	}
	return -1
}
