package feed

import (
	"strconv"
)

// parseSimple parses the line shape nearly every feed sends,
// {"symbol":"S","fields":{"f":"v" or number,...}[,"ts":N]} (keys in that
// order, strings without escapes, any JSON whitespace between tokens),
// without encoding/json, and reports whether it could. A line it takes
// reads exactly as the general path reads it (FuzzParseLineSimple checks);
// any other line, and every error, is left to the general path. When it
// reports false, u holds nothing useful.
func parseSimple(b []byte, u *Update) bool {
	u.Reset()
	p := scanner{b: b}
	if !p.byte('{') || !p.key("symbol") {
		return false
	}
	sym, ok := p.str()
	if !ok || !ValidSymbol(string(sym)) || !p.byte(',') || !p.key("fields") || !p.byte('{') {
		return false
	}
	for {
		name, ok := p.str()
		if !ok || !p.byte(':') {
			return false
		}
		f, ok := ParseField(string(name))
		if !ok {
			return false
		}
		raw, ok := p.value()
		if !ok {
			return false
		}
		v, err := ParseValue(f, raw)
		if err != nil {
			return false
		}
		u.Put(f, v)
		if p.byte('}') {
			break
		}
		if !p.byte(',') {
			return false
		}
	}
	if p.byte(',') {
		if !p.key("ts") {
			return false
		}
		digits := p.digits()
		if len(digits) == 0 || len(digits) > 19 || (digits[0] == '0' && len(digits) > 1) {
			return false // JSON has no leading zeros
		}
		ts, err := strconv.ParseInt(string(digits), 10, 64)
		if err != nil {
			return false
		}
		u.TS = ts
	}
	if !p.byte('}') || !p.end() {
		return false
	}
	u.Symbol = string(sym)
	return true
}

// scanner reads JSON tokens off b for parseSimple.
type scanner struct {
	b []byte
	i int
}

func (p *scanner) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

// byte consumes c, after whitespace, if it is next.
func (p *scanner) byte(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// key consumes "name" and its colon.
func (p *scanner) key(name string) bool {
	s, ok := p.str()
	return ok && string(s) == name && p.byte(':')
}

// str consumes a string without escapes or control characters and
// returns its content.
func (p *scanner) str() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	for j := p.i; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			s := p.b[p.i:j]
			p.i = j + 1
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

// value consumes a string or a number and returns its JSON text.
func (p *scanner) value() ([]byte, bool) {
	p.space()
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '"' {
		if _, ok := p.str(); !ok {
			return nil, false
		}
		return p.b[start:p.i], true
	}
	for p.i < len(p.b) {
		c := p.b[p.i]
		if (c < '0' || c > '9') && c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E' {
			break
		}
		p.i++
	}
	if p.i == start || !validNumber(p.b[start:p.i]) {
		return nil, false
	}
	return p.b[start:p.i], true
}

func (p *scanner) digits() []byte {
	p.space()
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.b[start:p.i]
}

func (p *scanner) end() bool {
	p.space()
	return p.i == len(p.b)
}

// validNumber reports whether b is a JSON number.
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	return i == len(b)
}
