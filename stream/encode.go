package stream

import (
	"encoding/json"
	"strconv"

	"tickerd/conflate"
	"tickerd/feed"
)

// Kinds of data message, used as conflate.MemoKey.Kind.
const (
	kindUpdate uint8 = iota
	kindSnapshot
)

// kindDelayed marks a delayed-tier message in a memo key.
const kindDelayed uint8 = 0x80

// appendData encodes a snapshot or update message for the fields in mask of
// v. Symbols and values are validated on ingest (symbol charset, canonical
// decimal, time and status text), so none of them needs JSON escaping.
func appendData(b []byte, kind uint8, sym string, v *conflate.View, mask feed.FieldSet, delayed bool) []byte {
	if kind == kindSnapshot {
		b = append(b, `{"type":"snapshot","symbol":"`...)
	} else {
		b = append(b, `{"type":"update","symbol":"`...)
	}
	b = append(b, sym...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, v.Seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, v.TS, 10)
	if delayed {
		b = append(b, `,"delayed":true`...)
	}
	b = append(b, `,"fields":{`...)
	first := true
	for f, rest, ok := mask.Next(); ok; f, rest, ok = rest.Next() {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, f.String()...)
		b = append(b, `":"`...)
		b = append(b, v.Values[f].String()...)
		b = append(b, '"')
	}
	return append(b, "}}"...)
}

// encodeData returns the shared encoding of a data message, built once per
// (seq, fields, kind, tier) and symbol.
func encodeData(e *conflate.Entry, kind uint8, v *conflate.View, mask feed.FieldSet, delayed bool) []byte {
	key := conflate.MemoKey{Seq: v.Seq, Fields: mask, Kind: kind}
	if delayed {
		key.Kind |= kindDelayed
	}
	return e.Memo(key, func() []byte {
		return appendData(make([]byte, 0, 80+24*mask.Len()), kind, e.Symbol(), v, mask, delayed)
	})
}

type authenticatedMsg struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id,omitempty"`
	User string          `json:"user,omitempty"`
}

// encodeAuthenticated acknowledges an auth op (an extension of the
// contract's messages).
func encodeAuthenticated(id json.RawMessage, user string) []byte {
	return mustJSON(authenticatedMsg{Type: "authenticated", ID: id, User: user})
}

// Control messages are rare; they go through encoding/json so that any
// client-supplied text is escaped correctly.

type errorMsg struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Code    string          `json:"code"`
	Symbol  string          `json:"symbol,omitempty"`
	Message string          `json:"message"`
}

func encodeError(id json.RawMessage, code, symbol, msg string) []byte {
	return mustJSON(errorMsg{Type: "error", ID: id, Code: code, Symbol: symbol, Message: msg})
}

type ackMsg struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Symbols []string        `json:"symbols"`
}

func encodeAck(typ string, id json.RawMessage, symbols []string) []byte {
	if symbols == nil {
		symbols = []string{}
	}
	return mustJSON(ackMsg{Type: typ, ID: id, Symbols: symbols})
}

type pongMsg struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id,omitempty"`
	TS   int64           `json:"ts"`
}

func encodePong(id json.RawMessage, ts int64) []byte {
	return mustJSON(pongMsg{Type: "pong", ID: id, TS: ts})
}

type sessionMsg struct {
	Type    string `json:"type"`
	Session string `json:"session"`
	Resume  string `json:"resume"`
}

func encodeSession(id, resume string) []byte {
	return mustJSON(sessionMsg{Type: "session", Session: id, Resume: resume})
}

type closeMsg struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func encodeClose(code, msg string) []byte {
	return mustJSON(closeMsg{Type: "close", Code: code, Message: msg})
}

func encodeHeartbeat(ts int64) []byte {
	b := append(make([]byte, 0, 40), `{"type":"heartbeat","ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	return append(b, '}')
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("stream: encoding a control message: " + err.Error()) // only fixed struct types reach here
	}
	return b
}
