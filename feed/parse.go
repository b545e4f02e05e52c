package feed

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Rejection reasons, used as metric labels and in Error.Reason.
const (
	ReasonJSON   = "json"   // not a JSON object, or a key of the wrong type
	ReasonSymbol = "symbol" // missing or malformed symbol
	ReasonField  = "field"  // missing, empty or unknown fields
	ReasonValue  = "value"  // a field value outside its domain
)

// Error is a rejected line or value. Reason is one of the Reason constants;
// Field names the offending field when there is one.
type Error struct {
	Reason string
	Field  string
	Msg    string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("field %q: %s", e.Field, e.Msg)
	}
	return e.Msg
}

func errorf(reason, field, format string, args ...any) *Error {
	return &Error{Reason: reason, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Limits on decimal values, so that a hostile "1e999999" cannot make the
// server build a megabyte of digits.
const (
	maxDecimalText = 64 // bytes of input text
	maxFracDigits  = 18 // digits after the point, after trimming zeros
	maxIntDigits   = 24 // digits before the point
)

// ParseDecimal parses the plain or exponent notation of a decimal number
// (JSON number syntax, leading zeros allowed) within the model's limits.
func ParseDecimal(s string) (decimal.Decimal, error) {
	if len(s) == 0 || len(s) > maxDecimalText || !decimalSyntax(s) {
		return decimal.Decimal{}, fmt.Errorf("not a decimal: %s", quoteShort(s))
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("not a decimal: %s", quoteShort(s))
	}
	if e := d.Exponent(); e > maxIntDigits || e < -2*maxDecimalText {
		return decimal.Decimal{}, fmt.Errorf("decimal out of range: %s", quoteShort(s))
	}
	return d, nil
}

// decimalSyntax checks -?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]{1,4})?
func decimalSyntax(s string) bool {
	i := 0
	if s[0] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if n := digits(); n == 0 || n > 4 {
			return false
		}
	}
	return i == len(s)
}

// plainDecimal is ParseDecimal then DecimalValue for what feeds mostly
// send, -?[0-9]+(\.[0-9]+)? with at most 18 digits: the same decimal
// (coefficient and exponent) and the same canonical text, without going
// through math/big's formatting. ok is false for anything else.
func plainDecimal(s string) (v Value, ok bool) {
	i, neg := 0, len(s) > 0 && s[0] == '-'
	if neg {
		i = 1
	}
	var coef int64
	digits, dot := 0, -1
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			coef = coef*10 + int64(c-'0')
			digits++
		case c == '.' && dot < 0 && digits > 0:
			dot = i
		default:
			return Value{}, false
		}
	}
	if digits == 0 || digits > 18 || dot == len(s)-1 {
		return Value{}, false
	}
	start, frac := 0, ""
	if neg {
		start = 1
		coef = -coef
	}
	intPart := s[start:]
	if dot >= 0 {
		intPart, frac = s[start:dot], strings.TrimRight(s[dot+1:], "0")
	}
	if intPart = strings.TrimLeft(intPart, "0"); intPart == "" {
		intPart = "0"
	}
	exp := 0
	if dot >= 0 {
		exp = dot + 1 - len(s)
	}
	var text string
	switch {
	case frac != "" && coef < 0:
		text = "-" + intPart + "." + frac
	case frac != "":
		text = intPart + "." + frac
	case coef < 0:
		text = "-" + intPart
	default:
		text = strings.Clone(intPart) // never pin the caller's buffer (a CSV row)
	}
	return Value{num: decimal.New(coef, int32(exp)), text: text}, true
}

// checkDigits enforces the digit limits on a canonical decimal text.
func checkDigits(text string) bool {
	intDigits, frac := len(text), 0
	for i := 0; i < len(text); i++ {
		if text[i] == '.' {
			intDigits, frac = i, len(text)-i-1
			break
		}
	}
	if len(text) > 0 && text[0] == '-' {
		intDigits--
	}
	return intDigits <= maxIntDigits && frac <= maxFracDigits
}

// ParseValue parses the JSON encoding of a value for field f: a JSON string
// for every field, or a JSON number for decimal fields (read as a decimal,
// never as float64).
func ParseValue(f Field, raw json.RawMessage) (Value, error) {
	if len(raw) == 0 {
		return Value{}, errorf(ReasonValue, f.String(), "missing value")
	}
	if raw[0] == '"' {
		text, ok := jsonString(raw)
		if !ok {
			return Value{}, errorf(ReasonValue, f.String(), "malformed string")
		}
		return parseText(f, text, true)
	}
	return parseText(f, string(raw), false)
}

// ParseText parses the text of a value for field f as ParseValue parses a
// JSON string: a decimal in plain or exponent notation, an RFC 3339 time or
// a status word. It is the entry for formats without JSON (CSV cells).
func ParseText(f Field, s string) (Value, error) { return parseText(f, s, true) }

// jsonString decodes a JSON string token. Printable ASCII without escapes,
// what feeds send, is copied as is; anything else goes to encoding/json.
func jsonString(raw []byte) (string, bool) {
	n := len(raw)
	if n >= 2 && raw[n-1] == '"' {
		plain := true
		for _, c := range raw[1 : n-1] {
			if c < 0x20 || c > 0x7e || c == '\\' || c == '"' {
				plain = false
				break
			}
		}
		if plain {
			return string(raw[1 : n-1]), true
		}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// parseText parses the text of a value for field f; isString says whether
// it came quoted (JSON numbers are accepted for decimal fields only).
func parseText(f Field, text string, isString bool) (Value, error) {
	name := f.String()
	switch f.Kind() {
	case KindPrice, KindSize:
		if !isString && (text[0] != '-' && (text[0] < '0' || text[0] > '9')) {
			return Value{}, errorf(ReasonValue, name, "want a decimal string or number, got %s", quoteShort(text))
		}
		v, ok := plainDecimal(text)
		if !ok {
			d, err := ParseDecimal(text)
			if err != nil {
				return Value{}, errorf(ReasonValue, name, "%s", err)
			}
			v = DecimalValue(d)
		}
		if f.Kind() == KindSize && v.num.Sign() < 0 {
			return Value{}, errorf(ReasonValue, name, "negative size %s", quoteShort(text))
		}
		if !checkDigits(v.text) {
			return Value{}, errorf(ReasonValue, name, "decimal out of range: %s", quoteShort(text))
		}
		return v, nil
	case KindTime:
		if !isString {
			return Value{}, errorf(ReasonValue, name, "want an RFC 3339 time string, got %s", quoteShort(text))
		}
		t, err := time.Parse(time.RFC3339Nano, text)
		if err != nil {
			return Value{}, errorf(ReasonValue, name, "not an RFC 3339 time: %s", quoteShort(text))
		}
		if y := t.UTC().Year(); y < 0 || y > 9999 { // RFC 3339 cannot write it in UTC
			return Value{}, errorf(ReasonValue, name, "time out of range in UTC: %s", quoteShort(text))
		}
		return TimeValue(t), nil
	default: // KindStatus
		if isString {
			switch text { // the constants, so that a value never pins its input
			case StatusTrading:
				return StatusValue(StatusTrading), nil
			case StatusHalted:
				return StatusValue(StatusHalted), nil
			case StatusStale:
				return StatusValue(StatusStale), nil
			}
		}
		return Value{}, errorf(ReasonValue, name, "want trading, halted or stale, got %s", quoteShort(text))
	}
}

// ParseLine parses one NDJSON line,
// {"symbol":"AAPL","fields":{"bid":"189.12"},"ts":1700000000000000}, into u
// (which it resets first). "ts" is optional (captures carry it; ingest
// ignores it). Any other key, an unknown field name or a value outside its
// field's domain rejects the whole line with an *Error.
func ParseLine(b []byte, u *Update) error {
	if parseSimple(b, u) {
		return nil
	}
	return parseGeneral(b, u)
}

// parseGeneral is ParseLine through encoding/json: any key order, escapes,
// and the errors.
func parseGeneral(b []byte, u *Update) error {
	u.Reset()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return errorf(ReasonJSON, "", "not a JSON object: %s", jsonProblem(err))
	}
	for k := range keys {
		switch k {
		case "symbol", "fields", "ts":
		default:
			return errorf(ReasonJSON, "", "unknown key %s (want symbol, fields, ts)", quoteShort(k))
		}
	}
	raw, ok := keys["symbol"]
	if !ok {
		return errorf(ReasonSymbol, "", `missing "symbol"`)
	}
	var sym string
	if err := json.Unmarshal(raw, &sym); err != nil {
		return errorf(ReasonSymbol, "", `"symbol" must be a string`)
	}
	if !ValidSymbol(sym) {
		return errorf(ReasonSymbol, "", "bad symbol %s: want [A-Z0-9][A-Z0-9._:-]{0,31}", quoteShort(sym))
	}
	u.Symbol = sym
	if raw, ok := keys["ts"]; ok {
		ts, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || ts < 0 {
			return errorf(ReasonJSON, "", `"ts" must be a non-negative integer of Unix microseconds`)
		}
		u.TS = ts
	}
	raw, ok = keys["fields"]
	if !ok {
		return errorf(ReasonField, "", `missing "fields"`)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return errorf(ReasonField, "", `"fields" must be an object`)
	}
	if len(fields) == 0 {
		return errorf(ReasonField, "", `"fields" is empty`)
	}
	for name, raw := range fields {
		f, ok := ParseField(name)
		if !ok {
			return errorf(ReasonField, name, "unknown field")
		}
		v, err := ParseValue(f, raw)
		if err != nil {
			return err
		}
		u.Put(f, v)
	}
	return nil
}

// jsonProblem shortens encoding/json's messages to what a feed author needs.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		return "want an object, got " + te.Value
	}
	return err.Error()
}

// quoteShort quotes s for an error message, cut to 40 bytes.
func quoteShort(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:40]) + "…"
	}
	return strconv.Quote(s)
}
