package simulator

import (
	"bytes"
	"strconv"

	"tickerd/feed"
)

// parseCaptureLine parses one capture line into u: the canonical form
// CaptureWriter writes, {"symbol":"S","fields":{"f":"v",...},"ts":N} with
// no space and no escape, without going through encoding/json, and
// anything else with feed.ParseLine. Both give the same update for a line
// the fast path takes (FuzzCaptureLine checks); every error comes from
// feed.ParseLine.
func parseCaptureLine(b []byte, u *feed.Update) error {
	if parseCanonical(b, u) {
		return nil
	}
	return feed.ParseLine(b, u)
}

// parseCanonical parses a canonical capture line into u and reports
// whether it could; when it cannot, u holds nothing useful.
func parseCanonical(b []byte, u *feed.Update) bool {
	u.Reset()
	rest, ok := bytes.CutPrefix(b, []byte(`{"symbol":`))
	if !ok {
		return false
	}
	sym, rest, ok := cutString(rest)
	if !ok || !feed.ValidSymbol(string(sym)) {
		return false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"fields":{`)); !ok {
		return false
	}
	for {
		name, r, ok := cutString(rest)
		if !ok || len(r) == 0 || r[0] != ':' {
			return false
		}
		f, ok := feed.ParseField(string(name))
		if !ok {
			return false
		}
		_, after, ok := cutString(r[1:])
		if !ok {
			return false
		}
		v, err := feed.ParseValue(f, r[1:len(r)-len(after)])
		if err != nil {
			return false
		}
		u.Put(f, v)
		if len(after) == 0 {
			return false
		}
		rest = after[1:]
		if after[0] == '}' {
			break
		}
		if after[0] != ',' {
			return false
		}
	}
	digits, ok := bytes.CutPrefix(rest, []byte(`,"ts":`))
	if !ok {
		return false
	}
	digits, ok = bytes.CutSuffix(digits, []byte{'}'})
	if !ok || len(digits) == 0 || len(digits) > 19 || (digits[0] == '0' && len(digits) > 1) {
		return false // JSON has no leading zeros
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	ts, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil {
		return false
	}
	u.Symbol, u.TS = string(sym), ts
	return true
}

// cutString cuts a JSON string without escapes or control characters off
// the front of b, returning its content and what follows.
func cutString(b []byte) (s, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, false
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return b[1:i], b[i+1:], true
		case c == '\\' || c < 0x20:
			return nil, nil, false
		}
	}
	return nil, nil, false
}
