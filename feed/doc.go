// Package feed owns the normalized market-data model that every other stage
// shares: symbols, the level-1 field set, decimal values and the Update that
// carries them. It also validates what comes in and turns it into updates:
// ingest lines (NDJSON) and POST /v1/ingest, the TCP NDJSON adapter, the
// CSV adapter for bulk loads, and the WebSocket upstream adapter, which
// dials an exchange and maps its JSON messages with a Mapping. Every
// adapter validates each line, row or record on its own and counts what it
// accepts, rejects (by reason) and ignores.
//
// feed is a leaf: it imports no other tickerd package. It never stores
// state beyond one request, file or connection; the latest value of a
// symbol lives in conflate. Prices and sizes are shopspring/decimal values
// and never pass through float64.
package feed
