package feed

import (
	"math/bits"
	"time"

	"github.com/shopspring/decimal"
)

// MaxSymbolLen is the longest symbol accepted.
const MaxSymbolLen = 32

// ValidSymbol reports whether s matches [A-Z0-9][A-Z0-9._:-]{0,31}.
func ValidSymbol(s string) bool {
	if len(s) == 0 || len(s) > MaxSymbolLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == ':' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// Field names one level-1 field of a symbol's record.
type Field uint8

// The level-1 fields, in wire order.
const (
	Bid Field = iota
	BidSize
	Ask
	AskSize
	Last
	LastSize
	Volume
	Open
	High
	Low
	PrevClose
	Change
	ChangePct
	Time
	Status
	NumFields // number of fields; not a field
)

var fieldNames = [NumFields]string{
	"bid", "bidSize", "ask", "askSize", "last", "lastSize", "volume",
	"open", "high", "low", "prevClose", "change", "changePct", "time", "status",
}

// String returns the field's wire name.
func (f Field) String() string {
	if f < NumFields {
		return fieldNames[f]
	}
	return "field(?)"
}

// ParseField returns the field with the given wire name.
func ParseField(name string) (Field, bool) {
	for i, n := range fieldNames {
		if n == name {
			return Field(i), true
		}
	}
	return 0, false
}

// Kind is the value domain of a field.
type Kind uint8

// Field kinds.
const (
	KindPrice  Kind = iota // any decimal (prices, changes, percentages)
	KindSize               // non-negative decimal (sizes, volume)
	KindTime               // RFC 3339 timestamp
	KindStatus             // trading, halted or stale
)

// Kind returns the value domain of f.
func (f Field) Kind() Kind {
	switch f {
	case BidSize, AskSize, LastSize, Volume:
		return KindSize
	case Time:
		return KindTime
	case Status:
		return KindStatus
	}
	return KindPrice
}

// FieldSet is a set of fields, one bit per Field.
type FieldSet uint16

// AllFields holds every level-1 field.
const AllFields FieldSet = 1<<NumFields - 1

// Has reports whether f is in the set.
func (s FieldSet) Has(f Field) bool { return s&(1<<f) != 0 }

// With returns the set plus f.
func (s FieldSet) With(f Field) FieldSet { return s | 1<<f }

// Len returns the number of fields in the set.
func (s FieldSet) Len() int { return bits.OnesCount16(uint16(s)) }

// Next returns the lowest field in the set and the set without it; ok is
// false for the empty set. It lets hot loops walk a set without allocating:
//
//	for f, rest, ok := s.Next(); ok; f, rest, ok = rest.Next() { ... }
func (s FieldSet) Next() (f Field, rest FieldSet, ok bool) {
	if s == 0 {
		return 0, 0, false
	}
	f = Field(bits.TrailingZeros16(uint16(s)))
	return f, s &^ (1 << f), true
}

// Status values of the status field.
const (
	StatusTrading = "trading"
	StatusHalted  = "halted"
	StatusStale   = "stale"
)

// TimeLayout is the wire form of the time field: RFC 3339, UTC, microseconds.
const TimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// Value is one field's value. Numeric values keep their decimal; every value
// keeps its canonical wire text, which is what equality compares, so two
// values are equal exactly when they would be sent the same. The zero Value
// means "no value". Values are immutable and safe to share.
type Value struct {
	num  decimal.Decimal
	text string
}

// DecimalValue returns the value of d. Its text is d in plain notation with
// trailing fractional zeros trimmed.
func DecimalValue(d decimal.Decimal) Value { return Value{num: d, text: d.String()} }

// TimeValue returns the value of t, in UTC with microsecond precision.
func TimeValue(t time.Time) Value {
	return Value{text: t.UTC().Truncate(time.Microsecond).Format(TimeLayout)}
}

// StatusValue returns the value of a status word. It does not validate s;
// ParseValue does.
func StatusValue(s string) Value { return Value{text: s} }

// IsZero reports whether v holds no value.
func (v Value) IsZero() bool { return v.text == "" }

// String returns the canonical wire text (without JSON quotes).
func (v Value) String() string { return v.text }

// Decimal returns the numeric value; zero for time and status values.
func (v Value) Decimal() decimal.Decimal { return v.num }

// Equal reports whether two values are the same on the wire.
func (v Value) Equal(o Value) bool { return v.text == o.text }

// Update is one normalized change to a symbol: the fields in Set take the
// values in Values; other entries of Values are ignored. TS is the ingest
// time in Unix microseconds; zero means "stamp it when applied".
// An Update is a plain value; whoever fills it owns it.
type Update struct {
	Symbol string
	TS     int64
	Set    FieldSet
	Values [NumFields]Value
}

// Put sets field f to v.
func (u *Update) Put(f Field, v Value) {
	u.Values[f] = v
	u.Set = u.Set.With(f)
}

// Reset empties u for reuse.
func (u *Update) Reset() { *u = Update{} }
