// Package clienttest drives the JavaScript client (web/static/client.js,
// served at /v1/client.js) in a real headless Chromium against a real
// tickerd data path in-process: convergence on every transport, fallback
// from WebSocket to SSE to long-poll, reconnection after a restart; and
// the dashboard at / (dashboard*_test.go), against the in-process data
// path or a tickerd process built for the run: live cues, watchlists,
// sign-in, keyboard, layouts with screenshots in artifacts/screenshots,
// and its frame budget at 500 symbols and 20,000 updates/s.
//
// The tests need a Chromium (make test installs one): without it they skip,
// unless the environment variable CI is set, where they fail.
package clienttest
