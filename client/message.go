package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Message types the server sends (the "type" member).
const (
	TypeSession      = "session"
	TypeSubscribed   = "subscribed"
	TypeUnsubscribed = "unsubscribed"
	TypeSnapshot     = "snapshot"
	TypeUpdate       = "update"
	TypeError        = "error"
	TypePong         = "pong"
	TypeHeartbeat    = "heartbeat"
	TypeClose        = "close"
)

// Close codes of close messages.
const (
	CloseShutdown     = "shutdown"
	CloseMaxAge       = "max_age"
	CloseSlowConsumer = "slow_consumer"
	CloseReplaced     = "replaced"
	CloseRevoked      = "revoked"
	CloseUnauthorized = "unauthorized"
)

// Error codes of error messages.
const (
	CodeBadRequest    = "bad_request"
	CodeUnauthorized  = "unauthorized"
	CodeNotEntitled   = "not_entitled"
	CodeLimitExceeded = "limit_exceeded"
)

// Message is one server message, as the protocol defines it; members a
// message type does not use stay zero.
type Message struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"` // the op's id, as sent
	Symbol  string          `json:"symbol,omitempty"`
	Symbols []string        `json:"symbols,omitempty"`
	Seq     uint64          `json:"seq,omitempty"`
	TS      int64           `json:"ts,omitempty"` // Unix microseconds
	Fields  FieldValues     `json:"fields,omitempty"`
	Delayed bool            `json:"delayed,omitempty"`
	Session string          `json:"session,omitempty"`
	Resume  string          `json:"resume,omitempty"`
	Code    string          `json:"code,omitempty"`
	Text    string          `json:"message,omitempty"`
}

// FieldValues maps field names to values as the server sends them: decimals
// in plain notation ("189.12"), times in RFC 3339, statuses as words.
type FieldValues map[string]string

// UnmarshalJSON reads a fields object. Values are JSON strings by
// contract; a JSON number is kept as its literal text, and any other kind
// of value is skipped.
func (f *FieldValues) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*f = nil
		return nil
	}
	out := make(FieldValues, len(raw))
	for name, v := range raw {
		switch {
		case len(v) == 0:
		case v[0] == '"':
			var s string
			if json.Unmarshal(v, &s) == nil {
				out[name] = s
			}
		case v[0] == '-' || (v[0] >= '0' && v[0] <= '9'):
			out[name] = string(v)
		}
	}
	*f = out
	return nil
}

// opID returns an op id that the client generated (a JSON number), or -1.
func (m *Message) opID() int64 {
	if len(m.ID) == 0 {
		return -1
	}
	n, err := strconv.ParseInt(string(m.ID), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// decodeFrame splits one WebSocket frame, NDJSON line, SSE event or
// long-poll entry into its messages: a single JSON object or an array.
func decodeFrame(b []byte) ([]Message, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] == '[' {
		var ms []Message
		if err := json.Unmarshal(b, &ms); err != nil {
			return nil, fmt.Errorf("client: malformed batch: %w", err)
		}
		return ms, nil
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("client: malformed message: %w", err)
	}
	return []Message{m}, nil
}

// Sentinel errors.
var (
	// ErrClosed is returned by calls on a Client that has been closed.
	ErrClosed = errors.New("client: closed")
	// ErrStreamEnded means the server ended a stream without a close
	// message (or the network did).
	ErrStreamEnded = errors.New("client: stream ended")
	// ErrIdle means nothing, not even a heartbeat, arrived for the idle
	// timeout: the connection is taken for dead.
	ErrIdle = errors.New("client: connection idle past the timeout")
	// errSessionGone means the server no longer knows the session
	// (404 on a poll or an op).
	errSessionGone = errors.New("client: session unknown to the server")
)

// ServerError is an error message from the server.
type ServerError struct {
	Code    string // bad_request, unauthorized, not_entitled, limit_exceeded
	Symbol  string // the symbol it is about, if any
	Message string // for humans
}

func (e *ServerError) Error() string {
	if e.Symbol != "" {
		return fmt.Sprintf("client: server error %s for %s: %s", e.Code, e.Symbol, e.Message)
	}
	return fmt.Sprintf("client: server error %s: %s", e.Code, e.Message)
}

// CloseError is a close message from the server: why it ended a stream.
type CloseError struct {
	Code    string // shutdown, max_age, slow_consumer, replaced, revoked, unauthorized
	Message string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("client: server closed the stream: %s: %s", e.Code, e.Message)
}

// final reports whether the close forbids reconnecting.
func (e *CloseError) final() bool {
	return e.Code == CloseRevoked || e.Code == CloseUnauthorized
}

// HTTPError is a request the server refused.
type HTTPError struct {
	URL    string // without credentials
	Status int
	Body   string // the start of the reply
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("client: %s: HTTP %d: %s", e.URL, e.Status, e.Body)
}

// permanent reports whether err means retrying cannot help: the server
// turned the credential down.
func permanent(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Status == 401
}
