package cluster

import (
	"strconv"
	"strings"

	"tickerd/feed"
)

// Names of the JetStream objects a cluster shares.
const (
	StreamName    = "TICKERD_TICKS"
	SubjectPrefix = "tickerd.tick."
	SnapBucket    = "tickerd_snap"
	LeaseBucket   = "tickerd_lease"
	headKey       = "_head"  // stream position every snapshot key reflects
	leaseKey      = "writer" // the node that writes snapshots
	bumpHeader    = "Tickerd-Bump"
)

// encodeSymbol turns a symbol into one subject token and key-value key:
// '.' and ':' (legal in symbols, not as such in tokens or keys) become
// "=2E" and "=3A". Symbols hold no '=', so the mapping is one to one.
func encodeSymbol(sym string) string {
	if !strings.ContainsAny(sym, ".:") {
		return sym
	}
	var b strings.Builder
	for i := 0; i < len(sym); i++ {
		switch c := sym[i]; c {
		case '.':
			b.WriteString("=2E")
		case ':':
			b.WriteString("=3A")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// decodeSymbol reverses encodeSymbol.
func decodeSymbol(tok string) string {
	if !strings.Contains(tok, "=") {
		return tok
	}
	r := strings.NewReplacer("=2E", ".", "=3A", ":")
	return r.Replace(tok)
}

// Subject returns the stream subject of sym's updates.
func Subject(sym string) string { return SubjectPrefix + encodeSymbol(sym) }

// appendUpdate encodes u as the NDJSON line feed.ParseLine reads, with ts.
// Symbols and values are validated on ingest, so none needs JSON escaping.
func appendUpdate(b []byte, u *feed.Update, ts int64) []byte {
	b = append(b, `{"symbol":`...)
	b = strconv.AppendQuote(b, u.Symbol)
	b = append(b, `,"fields":{`...)
	first := true
	for f, rest, ok := u.Set.Next(); ok; f, rest, ok = rest.Next() {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, f.String()...)
		b = append(b, `":`...)
		b = strconv.AppendQuote(b, u.Values[f].String())
	}
	b = append(b, `},"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	return append(b, '}')
}
