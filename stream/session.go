package stream

import (
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"tickerd/conflate"
	"tickerd/feed"
)

// maxCtrl bounds the control messages (acks, errors, pongs) a session holds
// for its writer; a client that sends ops faster than it reads replies is
// not read from until the writer catches up.
const maxCtrl = 64

// Session is one subscriber: its subscriptions, what it has been sent, and
// what is pending. Exactly one writer goroutine (the transport's) calls run;
// ops may come from any goroutine through apply.
type Session struct {
	id        string
	resume    string
	transport string
	srv       *Server
	created   time.Time

	wake      chan struct{} // capacity 1: many wake-ups merge into one
	ctrlSpace chan struct{} // capacity 1: the writer drained the control queue
	stop      chan struct{} // closed by stopWith
	finished  chan struct{} // closed once the server has let go of it
	stopOnce  sync.Once
	stopCode  string
	stopMsg   string

	mu   sync.Mutex // guards subs, ctrl and every sub's fields below
	subs map[string]*sub
	ctrl [][]byte

	dmu   sync.Mutex // guards dirty; taken by the cache's fan-out
	dirty []*sub

	// Owned by the writer goroutine.
	view   conflate.View
	spare  []*sub
	later  []*sub
	out    [][]byte
	outTS  []int64
	events uint64 // messages written, numbers SSE event ids
}

// sub is one subscription of a session to a symbol.
type sub struct {
	s     *Session
	watch *conflate.Watch
	dirty atomic.Bool // queued in s.dirty, or waiting for its throttle

	// Guarded by s.mu.
	fields  feed.FieldSet
	gap     time.Duration // least time between two messages (1/maxHz)
	next    time.Time     // earliest time of the next message
	lastSeq uint64        // seq of the last message sent; 0 = snapshot due
	sent    *[feed.NumFields]string
	gone    bool
}

// Notify is the cache's fan-out: mark dirty, wake the writer. It never
// blocks on I/O and never allocates once the dirty list has grown.
func (b *sub) Notify() {
	if b.dirty.Swap(true) {
		return // already pending: the writer will read the latest values
	}
	s := b.s
	s.dmu.Lock()
	s.dirty = append(s.dirty, b)
	s.dmu.Unlock()
	s.signal()
}

func (s *Session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// ID returns the session id.
func (s *Session) ID() string { return s.id }

// stopWith asks the writer to send a close message with code and end the
// stream. Only the first call counts.
func (s *Session) stopWith(code, msg string) {
	s.stopOnce.Do(func() {
		s.stopCode, s.stopMsg = code, msg
		close(s.stop)
	})
}

// enqueue adds control messages for the writer and wakes it.
func (s *Session) enqueue(msgs ...[]byte) {
	if len(msgs) == 0 {
		return
	}
	s.mu.Lock()
	s.ctrl = append(s.ctrl, msgs...)
	s.mu.Unlock()
	s.signal()
}

// ctrlFull reports whether the control queue is at its bound.
func (s *Session) ctrlFull() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ctrl) >= maxCtrl
}

// apply carries out one client op and returns its replies (acks, errors,
// pongs), which the caller delivers.
func (s *Session) apply(op *Op) [][]byte {
	switch op.Op {
	case OpSubscribe:
		return s.subscribe(op)
	case OpUnsubscribe:
		return s.unsubscribe(op)
	case OpPing:
		return [][]byte{encodePong(op.ID, time.Now().UnixMicro())}
	case OpAuth:
		// Open mode: there is nothing to authenticate against; the
		// credential is accepted and changes nothing.
		return nil
	}
	return [][]byte{s.srv.errorReply(op.ID, CodeBadRequest, "", "unknown op")}
}

func (s *Session) subscribe(op *Op) [][]byte {
	hz := s.srv.clampHz(op.MaxHz)
	gap := time.Duration(float64(time.Second) / hz)
	var accepted []string
	var errs [][]byte
	seen := make(map[string]bool, len(op.Symbols))

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sym := range op.Symbols {
		if seen[sym] {
			continue
		}
		seen[sym] = true
		if !feed.ValidSymbol(sym) {
			errs = append(errs, s.srv.errorReply(op.ID, CodeBadRequest, truncate(sym, 40), "bad symbol: want [A-Z0-9][A-Z0-9._:-]{0,31}"))
			continue
		}
		b := s.subs[sym]
		if b == nil {
			if len(s.subs) >= s.srv.cfg.MaxSymbols {
				errs = append(errs, s.srv.errorReply(op.ID, CodeLimitExceeded, sym, "too many symbols in this session"))
				continue
			}
			b = &sub{s: s}
			s.subs[sym] = b
			b.watch = s.srv.src.Watch(sym, b)
		}
		b.fields, b.gap = op.Fields, gap
		b.lastSeq, b.next, b.sent = 0, time.Time{}, nil // a fresh snapshot
		accepted = append(accepted, sym)
	}
	// The ack goes out before any snapshot: it is queued first, and the
	// writer drains control messages before data.
	replies := append([][]byte{encodeAck("subscribed", op.ID, accepted)}, errs...)
	for _, sym := range accepted {
		s.subs[sym].Notify()
	}
	return replies
}

func (s *Session) unsubscribe(op *Op) [][]byte {
	var done []string
	var errs [][]byte
	s.mu.Lock()
	for _, sym := range op.Symbols {
		if !feed.ValidSymbol(sym) {
			errs = append(errs, s.srv.errorReply(op.ID, CodeBadRequest, truncate(sym, 40), "bad symbol: want [A-Z0-9][A-Z0-9._:-]{0,31}"))
			continue
		}
		if b := s.subs[sym]; b != nil {
			b.gone = true
			b.watch.Stop()
			delete(s.subs, sym)
		}
		done = append(done, sym)
	}
	s.mu.Unlock()
	return append([][]byte{encodeAck("unsubscribed", op.ID, done)}, errs...)
}

// subSpec is what a retained session remembers of a subscription.
type subSpec struct {
	sym    string
	fields feed.FieldSet
	gap    time.Duration
}

// release stops every watch and returns what a resume needs.
func (s *Session) release() []subSpec {
	s.mu.Lock()
	defer s.mu.Unlock()
	specs := make([]subSpec, 0, len(s.subs))
	for sym, b := range s.subs {
		b.gone = true
		b.watch.Stop()
		specs = append(specs, subSpec{sym: sym, fields: b.fields, gap: b.gap})
	}
	clear(s.subs)
	return specs
}

// restore subscribes to retained specs; each gets a fresh snapshot.
func (s *Session) restore(specs []subSpec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range specs {
		if len(s.subs) >= s.srv.cfg.MaxSymbols {
			break
		}
		b := &sub{s: s, fields: sp.fields, gap: sp.gap}
		s.subs[sp.sym] = b
		b.watch = s.srv.src.Watch(sp.sym, b)
		b.Notify()
	}
}

// collect gathers what the writer should send now into s.out (control
// messages first, then one data message per due dirty subscription) and
// returns when the earliest throttled subscription falls due (zero if
// none). It holds s.mu, never the cache's fan-out locks, while encoding.
func (s *Session) collect(now time.Time) (next time.Time) {
	s.out, s.outTS = s.out[:0], s.outTS[:0]
	s.dmu.Lock()
	pending := s.dirty
	s.dirty = s.spare[:0]
	s.dmu.Unlock()

	s.mu.Lock()
	if len(s.ctrl) > 0 {
		s.out = append(s.out, s.ctrl...)
		for range s.ctrl {
			s.outTS = append(s.outTS, 0)
		}
		clear(s.ctrl)
		s.ctrl = s.ctrl[:0]
		select {
		case s.ctrlSpace <- struct{}{}:
		default:
		}
	}
	later := s.later[:0]
	var conflated uint64
	for _, b := range pending {
		if b.gone {
			continue
		}
		if now.Before(b.next) {
			later = append(later, b) // stays marked dirty until due
			if next.IsZero() || b.next.Before(next) {
				next = b.next
			}
			continue
		}
		b.dirty.Store(false) // a change from here on marks it again
		e := b.watch.Entry()
		e.Read(&s.view)
		msg, skipped := s.dataMessage(b, e, &s.view)
		conflated += skipped
		if msg != nil {
			s.out = append(s.out, msg)
			s.outTS = append(s.outTS, s.view.TS)
			b.next = now.Add(b.gap)
		}
	}
	s.mu.Unlock()

	if len(later) > 0 {
		s.dmu.Lock()
		s.dirty = append(s.dirty, later...)
		s.dmu.Unlock()
	}
	clear(later)
	s.later = later[:0]
	clear(pending)
	s.spare = pending[:0]
	if conflated > 0 {
		s.srv.m.conflated.Add(float64(conflated))
	}
	return next
}

// dataMessage returns the message that brings b up to date with v, or nil
// if the session already has every subscribed value; skipped counts the
// updates folded into this one. Called with s.mu held.
func (s *Session) dataMessage(b *sub, e *conflate.Entry, v *conflate.View) (msg []byte, skipped uint64) {
	if v.Seq == 0 || v.Seq <= b.lastSeq {
		return nil, 0 // no data yet (the first update notifies), or nothing new
	}
	kind := kindSnapshot
	mask := v.Set & b.fields
	if b.lastSeq != 0 {
		kind = kindUpdate
		skipped = v.Seq - b.lastSeq - 1
		mask = v.ChangedSince(b.lastSeq) & b.fields
		// A field that went A→B→A between two messages has not changed
		// for this session: leave it out.
		for f, rest, ok := mask.Next(); ok; f, rest, ok = rest.Next() {
			if b.sent[f] == v.Values[f].String() {
				mask &^= 1 << f
			}
		}
	}
	b.lastSeq = v.Seq
	if kind == kindUpdate && mask == 0 {
		return nil, skipped
	}
	if b.sent == nil {
		b.sent = new([feed.NumFields]string)
	}
	for f, rest, ok := mask.Next(); ok; f, rest, ok = rest.Next() {
		b.sent[f] = v.Values[f].String()
	}
	return encodeData(e, kind, v, mask), skipped
}

// initialOp turns the query parameters of a GET into a subscribe op; nil if
// the request names no symbols.
func initialOp(symbols, fields, maxHz string) (*Op, error) {
	syms := splitList(symbols)
	if len(syms) == 0 {
		return nil, nil
	}
	op := &Op{Op: OpSubscribe, Symbols: syms, Fields: feed.AllFields}
	if fields != "" {
		fs, err := parseFields(splitList(fields))
		if err != nil {
			return nil, &OpError{Msg: err.Error()}
		}
		op.Fields = fs
	}
	if maxHz != "" {
		hz, err := strconv.ParseFloat(maxHz, 64)
		if err != nil || hz < 0 || math.IsNaN(hz) || math.IsInf(hz, 0) {
			return nil, &OpError{Msg: "maxHz must be a non-negative number"}
		}
		op.MaxHz = hz
	}
	return op, nil
}
