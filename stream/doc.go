// Package stream owns subscriber sessions and the transports that carry
// them: WebSocket (ws.go), Server-Sent Events (sse.go), HTTP NDJSON
// streaming (ndjson.go), plus the REST snapshot and symbol list (rest.go).
//
// A session's pending state is a set of dirty subscriptions, never a queue
// of messages: the cache's fan-out marks a subscription dirty and wakes the
// session's writer; the writer reads the latest record, sends only the
// fields that changed since its last message for that symbol, and shares
// the encoded bytes with every session that needs the same message. Memory
// per session is bounded by its subscriptions, whatever the feed rate.
//
// stream never applies updates and never decides entitlements itself: it
// reads a Source.
package stream
