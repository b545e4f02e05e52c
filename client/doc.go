// Package client is tickerd's Go client for integrators: it keeps a local
// record of every subscribed symbol up to date over any of the server's
// transports, and survives disconnects.
//
// A Client owns one connection at a time (WebSocket, SSE, NDJSON or
// long-poll, see Transport), the subscriptions its caller asked for, and
// the local records built from the server's snapshot and update messages.
// When the connection ends it reconnects with jittered exponential
// backoff, resumes the server session where the transport has one (so a
// reconnect within the server's retention window costs only what changed),
// and subscribes again to whatever the server no longer knows.
//
// Changes reach the caller three ways: OnChange, a callback on the reading
// goroutine; Changes, a channel that conflates per symbol when its reader
// is slow; and Snapshot, which reads the local record at any time.
//
// The package never applies updates to a server and holds no global state:
// everything belongs to a Client, and Close ends all of its goroutines.
package client
