package stream

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"tickerd/conflate"
	"tickerd/entitlements"
	"tickerd/feed"
)

// maxCtrl bounds the control messages (acks, errors, pongs) a session holds
// for its writer; a client that sends ops faster than it reads replies is
// not read from until the writer catches up.
const maxCtrl = 64

// Session is one subscriber: its subscriptions, what it has been sent, and
// what is pending. One writer at a time steps it (the HTTP handler's
// goroutine, or a WebSocket drive); ops may come from any goroutine through
// apply.
type Session struct {
	id        string
	resume    string
	transport string
	tm        *transportMetrics // the transport's series, looked up once
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
	subs []*sub     // sorted by symbol: smaller than a map
	ctrl [][]byte

	// dirty is a lock-free stack of the subscriptions with news, linked
	// through sub.nextDirty: the cache's fan-out pushes, the writer takes
	// the whole stack at once. A sub is on it at most once (sub.dirty).
	dirty atomic.Pointer[sub]
	// pending records a wake-up for an on-demand writer (kick set); HTTP
	// transports' parked writers get a token on wake instead.
	pending atomic.Bool
	// held is set while the writer holds data back until notBefore (the
	// pacer's gap); the fan-out then leaves the writer alone, whose timer
	// is set for notBefore.
	held atomic.Bool

	// Owned by whichever goroutine is writing (one at a time).
	lastWrite time.Time // of a batch or heartbeat
	notBefore time.Time // no data write before this (pacing); zero = none
	drain     drain     // how fast the client takes data (drain.go)
	// Resume bookkeeping (resume.go): bytes written on this connection,
	// the latest writes' ends, and how many messages the client is known
	// to have (its kernel acknowledged them, or it said so).
	written   int64
	marks     [8]writeMark
	nmarks    int
	acks      [ackSampleKept]ackSample
	nacks     int
	confirmed uint64 // said by the client or confirmed by its next poll
	// resumeFrom is the message count a reconnecting client says it
	// has (SSE Last-Event-ID); 0 if it did not say.
	resumeFrom uint64

	remote    string       // the client's address
	disclosed bool         // the client holds the resume token (set before admit, or by it)
	stats     sessionStats // for the admin view and metrics, written by the writer
	events    uint64       // messages written, numbers SSE event ids
	closed    bool         // released: ops no longer apply (guarded by mu)

	// kick, when set, starts the writer on demand (WebSocket); HTTP
	// transports have a writer parked on wake instead. kickUrgent does
	// the same ahead of sessions already waiting for a writer.
	kick       func()
	kickUrgent func()
	// poll is set on long-poll sessions (poll.go).
	poll *pollState

	// Identity and limits (auth.go). who is nil in open mode, and on a
	// WebSocket session until its auth op.
	who      atomic.Pointer[entitlements.Principal]
	cred     string        // the credential who came from, checked again on reload (guarded by mu); never logged
	user     string        // the user whose connection count holds this session (guarded by srv.mu)
	maxSyms  int           // the user's subscription limit; 0 = the server's (guarded by mu)
	maxHz    float64       // the user's rate limit; 0 = the server's (guarded by mu)
	maxBPS   atomic.Int64  // the user's bandwidth cap; 0 = the server's
	ops      *rate.Limiter // client ops per second, made on the first op (guarded by mu)
	early    *Op           // the query's subscription, held until the client authenticates (guarded by mu)
	authWait *time.Timer   // closes a WebSocket session that does not authenticate in time
}

// sessionStats are a session's figures for readers other than its writer
// (the admin view, metrics at scrape time).
type sessionStats struct {
	messages atomic.Int64 // written, control messages included
	bytes    atomic.Int64 // written, framing included
	queued   atomic.Int64 // unsent bytes in the socket after the last write
	drainBPS atomic.Int64 // the client's measured drain rate, bytes/s; 0 = unmeasured
	gap      atomic.Int64 // least time between data writes now, nanoseconds
	limit    atomic.Int32 // what sets gap (limitNone, limitPacing, ...; admin.go)
}

// scratch is a writer's working memory, pooled so that an idle session
// holds none.
type scratch struct {
	out   [][]byte
	outTS []int64
	later []*sub
	data  int // data messages in out
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// sub is one subscription of a session to a symbol. It is kept small: a
// session holds one per symbol.
type sub struct {
	s         *Session
	watch     conflate.Watch
	dirty     atomic.Bool // on s.dirty, or held back by its throttle
	nextDirty *sub        // link in s.dirty; written only by whoever pushes b

	// Guarded by s.mu.
	fields  feed.FieldSet
	gone    bool
	delayed bool          // reads the delayed tier's source
	gap     time.Duration // least time between two messages (1/maxHz)
	next    time.Duration // earliest next message, as time since s.created
	// sent is the version of the record the last message brought the
	// client up to: after any message the client holds exactly sent's
	// values of the subscribed fields. nil = a snapshot is due, or, with
	// resumeSeq set, an update of what changed since that seq (a resumed
	// session whose client holds the record as of resumeSeq).
	sent      *conflate.View
	resumeSeq uint64
	// hist is the last two messages for the symbol (newest first): their
	// number in the session's message count and their seq, so that a
	// resume knows what the client surely has (resume.go).
	hist [2]sentMark
}

func (b *sub) symbol() string { return b.watch.Entry().Symbol() }

// findLocked returns the index of sym in s.subs, or where it would go.
// s.mu must be held.
func (s *Session) findLocked(sym string) (int, bool) {
	i := sort.Search(len(s.subs), func(i int) bool { return s.subs[i].symbol() >= sym })
	return i, i < len(s.subs) && s.subs[i].symbol() == sym
}

// addLocked subscribes sym from the realtime or delayed source, keeping
// s.subs sorted. s.mu must be held.
func (s *Session) addLocked(i int, sym string, fields feed.FieldSet, gap time.Duration, delayed bool) *sub {
	b := &sub{s: s, fields: fields, gap: gap, delayed: delayed}
	s.srv.source(delayed).Watch(&b.watch, sym, b)
	s.subs = slices.Insert(s.subs, i, b)
	return b
}

// Notify is the cache's fan-out: mark dirty, wake the writer. It never
// blocks and takes no lock; a subscription already pending costs one
// atomic swap.
func (b *sub) Notify() {
	if b.dirty.Swap(true) {
		return // already pending: the writer will read the latest values
	}
	b.s.push(b)
	if b.s.held.Load() {
		return // the writer's timer is set for the end of the hold
	}
	b.s.signal()
}

// push adds b, which the caller owns (its dirty flag just set, or held
// back by the writer), to the dirty stack.
func (s *Session) push(b *sub) {
	for {
		head := s.dirty.Load()
		b.nextDirty = head
		if s.dirty.CompareAndSwap(head, b) {
			return
		}
	}
}

func (s *Session) signal() {
	if s.kick != nil {
		s.pending.Store(true)
		s.kick()
		return
	}
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
		s.signal()
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
	if s.kickUrgent != nil {
		// A reply (pong, ack, error) goes ahead of the data fan-out.
		s.pending.Store(true)
		s.kickUrgent()
		return
	}
	s.signal()
}

// takeCtrl empties the control queue and returns what it held.
func (s *Session) takeCtrl() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	msgs := slices.Clone(s.ctrl)
	clear(s.ctrl)
	s.ctrl = s.ctrl[:0]
	return msgs
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
	if !s.allowOp() {
		return [][]byte{s.srv.errorReply(op.ID, CodeLimitExceeded, "",
			fmt.Sprintf("too many ops: at most %g per second", s.srv.cfg.MaxOpRate))}
	}
	switch op.Op {
	case OpSubscribe:
		return s.subscribe(op)
	case OpUnsubscribe:
		return s.unsubscribe(op)
	case OpPing:
		return [][]byte{encodePong(op.ID, time.Now().UnixMicro())}
	case OpAuth:
		return s.authOp(op)
	}
	return [][]byte{s.srv.errorReply(op.ID, CodeBadRequest, "", "unknown op")}
}

func (s *Session) subscribe(op *Op) [][]byte {
	if refused := s.refuseSymbolsOp(op); refused != nil {
		return refused
	}
	srv := s.srv
	p := s.who.Load()
	var accepted []string
	var fresh []*sub
	var errs [][]byte
	seen := make(map[string]bool, len(op.Symbols))

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	gap := s.gapLocked(op.MaxHz)
	for _, sym := range op.Symbols {
		if seen[sym] {
			continue
		}
		seen[sym] = true
		if !feed.ValidSymbol(sym) {
			errs = append(errs, s.srv.errorReply(op.ID, CodeBadRequest, truncate(sym, 40), "bad symbol: want [A-Z0-9][A-Z0-9._:-]{0,31}"))
			continue
		}
		tier := srv.tierOf(p, sym)
		if tier == entitlements.None {
			errs = append(errs, srv.errorReply(op.ID, CodeNotEntitled, sym, "not entitled to this symbol"))
			continue
		}
		delayed := tier == entitlements.Delayed
		i, found := s.findLocked(sym)
		var b *sub
		if found {
			b = s.subs[i]
			b.fields, b.gap = op.Fields, gap
			b.next, b.sent = 0, nil // a fresh snapshot
			if b.delayed != delayed {
				s.moveLocked(b, delayed)
			}
		} else {
			if len(s.subs) >= s.maxSymbolsLocked() {
				errs = append(errs, srv.errorReply(op.ID, CodeLimitExceeded, sym, "too many symbols in this session"))
				continue
			}
			b = s.addLocked(i, sym, op.Fields, gap, delayed)
		}
		accepted = append(accepted, sym)
		fresh = append(fresh, b)
	}
	// The ack goes out before any snapshot: it is queued first, and the
	// writer drains control messages before data.
	replies := append([][]byte{encodeAck("subscribed", op.ID, accepted)}, errs...)
	for _, b := range fresh {
		b.Notify()
	}
	return replies
}

func (s *Session) unsubscribe(op *Op) [][]byte {
	if refused := s.refuseSymbolsOp(op); refused != nil {
		return refused
	}
	var done []string
	var errs [][]byte
	s.mu.Lock()
	for _, sym := range op.Symbols {
		if !feed.ValidSymbol(sym) {
			errs = append(errs, s.srv.errorReply(op.ID, CodeBadRequest, truncate(sym, 40), "bad symbol: want [A-Z0-9][A-Z0-9._:-]{0,31}"))
			continue
		}
		if i, found := s.findLocked(sym); found {
			b := s.subs[i]
			b.gone = true
			b.watch.Stop()
			s.subs = slices.Delete(s.subs, i, i+1)
		}
		done = append(done, sym)
	}
	s.mu.Unlock()
	return append([][]byte{encodeAck("unsubscribed", op.ID, done)}, errs...)
}

// resync makes every subscription send a fresh snapshot, for when what
// the client last received is not known.
func (s *Session) resync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.subs {
		b.sent, b.next, b.resumeSeq = nil, 0, 0
		b.hist = [2]sentMark{}
		b.Notify()
	}
}

// subSpec is what a retained session remembers of a subscription.
type subSpec struct {
	sym    string
	fields feed.FieldSet
	gap    time.Duration
	hist   [2]sentMark
}

// release stops every watch and returns what a resume needs: the
// subscriptions and how many messages the client surely has.
func (s *Session) release() ([]subSpec, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	confirmed := max(s.confirmed, s.ackedConfirmed(time.Now()))
	specs := make([]subSpec, 0, len(s.subs))
	for _, b := range s.subs {
		b.gone = true
		b.watch.Stop()
		specs = append(specs, subSpec{sym: b.symbol(), fields: b.fields, gap: b.gap, hist: b.hist})
	}
	s.subs = nil
	return specs, confirmed
}

// restore subscribes to retained specs, as the session's principal is
// entitled now: a symbol it may no longer see gets not_entitled (among
// the returned errors). A symbol whose last messages up to the client's
// confirmed count are known resumes from there (only what changed since
// is sent); any other gets a fresh snapshot.
func (s *Session) restore(specs []subSpec, confirmed uint64) (errs [][]byte) {
	p := s.who.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range specs {
		if len(s.subs) >= s.maxSymbolsLocked() {
			break
		}
		tier := s.srv.tierOf(p, sp.sym)
		if tier == entitlements.None {
			errs = append(errs, s.srv.errorReply(nil, CodeNotEntitled, sp.sym, "not entitled to this symbol"))
			continue
		}
		i, found := s.findLocked(sp.sym)
		if !found {
			b := s.addLocked(i, sp.sym, sp.fields, max(sp.gap, s.minGapLocked()), tier == entitlements.Delayed)
			b.resumeSeq, b.hist = resumePoint(sp.hist, confirmed)
			b.Notify()
		}
	}
	return errs
}

// collect gathers what is due now into sc.out (control messages first,
// then, if data is set, one data message per due dirty subscription, with
// its ingest time in sc.outTS) and returns when the earliest throttled
// subscription falls due (zero if none). It holds s.mu, never the cache's
// fan-out locks.
func (s *Session) collect(now time.Time, sc *scratch, data bool) (next time.Time) {
	var list *sub
	if data {
		list = s.dirty.Swap(nil)
	}
	s.mu.Lock()
	if len(s.ctrl) > 0 {
		sc.out = append(sc.out, s.ctrl...)
		for range s.ctrl {
			sc.outTS = append(sc.outTS, 0)
		}
		clear(s.ctrl)
		s.ctrl = s.ctrl[:0]
		select {
		case s.ctrlSpace <- struct{}{}:
		default:
		}
	}
	var conflated uint64
	at := now.Sub(s.created)
	for b := list; b != nil; b = list {
		list = b.nextDirty
		b.nextDirty = nil
		if b.gone {
			continue
		}
		if at < b.next {
			sc.later = append(sc.later, b) // stays marked dirty until due
			if due := s.created.Add(b.next); next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		b.dirty.Store(false) // a change from here on marks it again
		e := b.watch.Entry()
		v := e.Read()
		msg, skipped := dataMessage(b, e, v)
		conflated += skipped
		if msg != nil {
			ts := v.TS
			if b.delayed {
				ts += s.srv.cfg.Delay.Microseconds() // latency counts from when it became due
			}
			sc.out = append(sc.out, msg)
			sc.outTS = append(sc.outTS, ts)
			sc.data++
			b.next = at + b.gap
			b.hist[1] = b.hist[0]
			b.hist[0] = sentMark{event: s.events + uint64(len(sc.out)), seq: v.Seq}
		}
	}
	s.mu.Unlock()

	for _, b := range sc.later {
		s.push(b)
	}
	if conflated > 0 {
		s.srv.m.conflated.Add(float64(conflated))
	}
	return next
}

// dataMessage returns the message that brings b's client from b.sent up
// to v, or nil if it already holds every subscribed value; skipped counts
// the updates folded into it. Called with s.mu held.
func dataMessage(b *sub, e *conflate.Entry, v *conflate.View) (msg []byte, skipped uint64) {
	prev := b.sent
	if v.Seq == 0 || (prev != nil && v.Seq <= prev.Seq) {
		return nil, 0 // no data yet (the first update notifies), or nothing new
	}
	b.sent = v
	if prev == nil {
		if since := b.resumeSeq; since > 0 {
			// A resumed client holds the record as of since: send what
			// changed after it (perhaps a field it has; never one less).
			b.resumeSeq = 0
			if mask := v.ChangedSince(since) & b.fields; v.Seq > since && mask != 0 {
				return encodeData(e, kindUpdate, v, mask, b.delayed), v.Seq - since - 1
			}
			return nil, 0
		}
		return encodeData(e, kindSnapshot, v, v.Set&b.fields, b.delayed), 0
	}
	mask := v.ChangedSince(prev.Seq) & b.fields
	// A field that went A→B→A between two messages has not changed for
	// this client: leave it out.
	for f, rest, ok := mask.Next(); ok; f, rest, ok = rest.Next() {
		if prev.Set.Has(f) && prev.Values[f].Equal(v.Values[f]) {
			mask &^= 1 << f
		}
	}
	skipped = v.Seq - prev.Seq - 1
	if mask == 0 {
		return nil, skipped
	}
	return encodeData(e, kindUpdate, v, mask, b.delayed), skipped
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
