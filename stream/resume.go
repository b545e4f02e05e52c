package stream

import "time"

// Resume with changes only. A client that reconnects with its session's
// resume token within the retention window gets, for each subscribed
// symbol, only the fields that changed since the last message it surely
// received, instead of a fresh snapshot. "Surely" is the hard part: data
// in flight when a connection dies counts as not received.
//
// Messages are numbered by the session's message count (SSE event ids
// carry it). Each subscription remembers the number and seq of its last
// two messages (sub.hist). What the client surely has is a count:
//   - what it says: SSE Last-Event-ID "TOKEN.N", or resume=TOKEN.N on any
//     transport (N = messages it has processed, the session message
//     included);
//   - long-poll: everything up to the reply before its latest poll;
//   - otherwise, the messages whose bytes its TCP stack had acknowledged
//     at least resumeMargin before the connection ended (SIOCOUTQ, sampled
//     at writes): bytes acknowledged just before the end may still have
//     sat unread in the client's buffers. A client that fell behind within
//     resumeBehind of the end (unsent bytes backed up in its socket) may
//     have left acknowledged bytes unread for much longer: it confirms
//     nothing this way and gets snapshots. A client that must not be
//     sent more than it needs passes its count.
//
// A symbol resumes from the newest of its two messages within that count;
// if neither is, it gets a fresh snapshot. A resume may thus resend a
// field, never miss one.
const (
	resumeMargin   = time.Second
	resumeBehind   = 30 * time.Second
	ackSampleGap   = 400 * time.Millisecond // between every other kept acknowledgement sample
	ackSampleKept  = 8                      // samples kept: at least 1.6 s of history
	ackSampleEvery = 50 * time.Millisecond  // least time between two samples
)

// ackSample is how many messages the client's TCP stack had acknowledged
// at a time.
type ackSample struct {
	at     time.Time
	events uint64
}

// sentMark is one message for a symbol: its number and the seq it
// brought the client to.
type sentMark struct{ event, seq uint64 }

// writeMark is the end of one write on a connection: the bytes written so
// far and the message count after it.
type writeMark struct {
	end    int64
	events uint64
}

// resumePoint returns the seq a resumed subscription starts from (0: a
// snapshot is due), and its history without the messages that may not have
// arrived.
func resumePoint(hist [2]sentMark, confirmed uint64) (uint64, [2]sentMark) {
	var kept [2]sentMark
	n := 0
	for _, m := range hist {
		if m.event > 0 && m.event <= confirmed {
			kept[n] = m
			n++
		}
	}
	return kept[0].seq, kept
}

// confirmWrite records the end of a write of n bytes at now, after which
// the session had written events messages, and samples how many messages
// the client's TCP stack has acknowledged. Only the writer calls it.
func (s *Session) confirmWrite(now time.Time, n int, events uint64) {
	s.written += int64(n)
	s.marks[s.nmarks%len(s.marks)] = writeMark{end: s.written, events: events}
	s.nmarks++
	if s.drain.q == nil {
		return
	}
	// At most one sample per ackSampleEvery: a busy session writes far
	// more often, and the system call is a tenth of a write's cost. A
	// staler sample only confirms less.
	if s.nacks > 0 && now.Sub(s.acks[(s.nacks-1)%len(s.acks)].at) < ackSampleEvery {
		return
	}
	unacked, err := s.drain.q.Unacked()
	if err != nil {
		return
	}
	acked := s.written - int64(unacked)
	var ev uint64
	for _, m := range s.marks {
		if m.end > 0 && m.end <= acked && m.events > ev {
			ev = m.events
		}
	}
	// The newest sample replaces the previous one while the one before
	// that is under ackSampleGap old: every other kept sample is at least
	// the gap apart, and the newest is always current.
	sample := ackSample{at: now, events: ev}
	if s.nacks >= 2 && now.Sub(s.acks[(s.nacks-2)%len(s.acks)].at) < ackSampleGap {
		s.acks[(s.nacks-1)%len(s.acks)] = sample
		return
	}
	s.acks[s.nacks%len(s.acks)] = sample
	s.nacks++
}

// ackedConfirmed returns the messages the client's TCP acknowledgements
// confirm at now (see above).
func (s *Session) ackedConfirmed(now time.Time) uint64 {
	if !s.drain.behind.IsZero() && now.Sub(s.drain.behind) < resumeBehind {
		return 0
	}
	t := now.Add(-resumeMargin)
	var best ackSample
	for _, a := range s.acks {
		if !a.at.IsZero() && !a.at.After(t) && a.at.After(best.at) {
			best = a
		}
	}
	return best.events
}
