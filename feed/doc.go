// Package feed owns the normalized market-data model that every other stage
// shares: symbols, the level-1 field set, decimal values and the Update that
// carries them. It also parses and validates ingest lines (NDJSON) and serves
// POST /v1/ingest.
//
// feed is a leaf: it imports no other tickerd package. It never stores
// state beyond one request; the latest value of a symbol lives in conflate.
// Prices and sizes are shopspring/decimal values and never pass through
// float64.
package feed
