// Package stream owns subscriber sessions and the transports that carry
// them: WebSocket (ws.go, with ws_read.go and ws_wire.go), Server-Sent
// Events (sse.go), HTTP NDJSON streaming (ndjson.go), long-poll (poll.go),
// plus the REST snapshot and symbol list (rest.go).
//
// A session's pending state is a set of dirty subscriptions, never a queue
// of messages: the cache's fan-out pushes a subscription on the session's
// lock-free dirty stack and wakes its writer; the writer reads the latest
// version of the record, sends only the fields whose value differs from the
// version it last sent, and shares the encoded bytes with every session
// that needs the same message. Memory per session is bounded by its
// subscriptions, whatever the feed rate.
//
// Writers. SSE and NDJSON sessions write from their HTTP handler's
// goroutine, parked on the session's wake channel; a long-poll session
// writes from the poll in progress, if any, and otherwise keeps its news
// marked on its subscriptions. A WebSocket session has
// no goroutine while idle: the epoll poller (internal/netpoll) starts a
// read round when the client sends, and a change, a stop or the session's
// timer starts a drive (drivers.go) that writes what is due and returns.
// At most one drive runs per session, so one writer at a time still owns
// the socket's write side.
//
// stream never applies updates and never decides entitlements itself: it
// reads a Source.
package stream
