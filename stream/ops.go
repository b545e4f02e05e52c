package stream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"tickerd/feed"
)

// Error codes of error messages (contract).
const (
	CodeBadRequest    = "bad_request"
	CodeUnauthorized  = "unauthorized"
	CodeNotEntitled   = "not_entitled"
	CodeLimitExceeded = "limit_exceeded"
	CodeNotFound      = "not_found" // REST snapshot of a symbol without data
)

// Client op names.
const (
	OpSubscribe   = "subscribe"
	OpUnsubscribe = "unsubscribe"
	OpPing        = "ping"
	OpAuth        = "auth"
)

// MaxOpBytes is the largest client op accepted by default, on any
// transport (Config.MaxMessageBytes).
const MaxOpBytes = 64 << 10

// maxParseBytes is the largest op ParseOp reads, whatever the server's
// setting.
const maxParseBytes = 1 << 20

// Op is one parsed client op. ID is the op's id as sent (a JSON number or
// string), echoed verbatim in replies; nil when absent.
type Op struct {
	Op      string
	ID      json.RawMessage
	Symbols []string
	Fields  feed.FieldSet // AllFields when the op named none
	MaxHz   float64       // 0 when absent: the server default
	Token   string
}

// OpError is a client op that could not be parsed or validated. ID is set
// when the op's id could be read.
type OpError struct {
	ID  json.RawMessage
	Msg string
}

func (e *OpError) Error() string { return e.Msg }

type rawOp struct {
	Op      *string         `json:"op"`
	ID      json.RawMessage `json:"id"`
	Symbols *[]string       `json:"symbols"`
	Fields  *[]string       `json:"fields"`
	MaxHz   *float64        `json:"maxHz"`
	Token   *string         `json:"token"`
}

// ParseOp parses and validates one client op. Symbols are not validated
// here: each bad symbol gets its own error when the op is applied.
func ParseOp(b []byte) (*Op, error) {
	if len(b) > maxParseBytes {
		return nil, &OpError{Msg: fmt.Sprintf("op larger than %d bytes", maxParseBytes)}
	}
	var r rawOp
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return nil, &OpError{Msg: "malformed JSON op"}
	}
	if dec.More() {
		return nil, &OpError{Msg: "trailing data after JSON op"}
	}
	op := &Op{Fields: feed.AllFields}
	if id := bytes.TrimSpace(r.ID); len(id) > 0 && !bytes.Equal(id, []byte("null")) {
		if len(id) > 64 || (id[0] != '"' && id[0] != '-' && (id[0] < '0' || id[0] > '9')) {
			return nil, &OpError{Msg: "id must be a number or a string of at most 64 bytes"}
		}
		op.ID = id
	}
	if r.Op == nil {
		return nil, &OpError{ID: op.ID, Msg: `missing "op"`}
	}
	op.Op = *r.Op
	switch op.Op {
	case OpSubscribe, OpUnsubscribe:
		if r.Symbols == nil || len(*r.Symbols) == 0 {
			return nil, &OpError{ID: op.ID, Msg: `missing "symbols"`}
		}
		op.Symbols = *r.Symbols
		if r.Fields != nil {
			fs, err := parseFields(*r.Fields)
			if err != nil {
				return nil, &OpError{ID: op.ID, Msg: err.Error()}
			}
			op.Fields = fs
		}
		if r.MaxHz != nil {
			if hz := *r.MaxHz; hz < 0 || math.IsNaN(hz) || math.IsInf(hz, 0) {
				return nil, &OpError{ID: op.ID, Msg: "maxHz must be a non-negative number"}
			}
			op.MaxHz = *r.MaxHz
		}
	case OpPing:
	case OpAuth:
		if r.Token == nil || *r.Token == "" {
			return nil, &OpError{ID: op.ID, Msg: `missing "token"`}
		}
		op.Token = *r.Token
	default:
		return nil, &OpError{ID: op.ID, Msg: fmt.Sprintf("unknown op %q", truncate(op.Op, 32))}
	}
	return op, nil
}

// parseFields turns field names into a set; an empty list means all fields.
func parseFields(names []string) (feed.FieldSet, error) {
	if len(names) == 0 {
		return feed.AllFields, nil
	}
	var fs feed.FieldSet
	for _, n := range names {
		f, ok := feed.ParseField(n)
		if !ok {
			return 0, fmt.Errorf("unknown field %q", truncate(n, 32))
		}
		fs = fs.With(f)
	}
	return fs, nil
}

// splitList splits a comma list from a query parameter, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
