package stream

import (
	"encoding/json"
	"testing"

	"tickerd/feed"
)

// FuzzParseOp: no client op may panic the parser; an accepted op is
// well-formed, and every error can be encoded as a valid error message.
func FuzzParseOp(f *testing.F) {
	for _, s := range []string{
		`{"op":"subscribe","id":1,"symbols":["AAPL","MSFT"],"fields":["bid","ask"],"maxHz":4}`,
		`{"op":"unsubscribe","id":"x","symbols":["AAPL"]}`,
		`{"op":"ping","id":3}`, `{"op":"auth","id":4,"token":"abc"}`,
		`{"op":"subscribe","symbols":[]}`, `{"op":"dance"}`, `{"op":`, `[]`, `{"op":"subscribe","symbols":["A"],"maxHz":-1}`,
		`{"op":"subscribe","symbols":["A"],"fields":["colour"]}`, `{"op":"ping","id":{"a":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		op, err := ParseOp(b)
		if err != nil {
			oe, ok := err.(*OpError)
			if !ok {
				t.Fatalf("error of type %T", err)
			}
			msg := encodeError(oe.ID, CodeBadRequest, "", oe.Msg)
			if !json.Valid(msg) {
				t.Fatalf("invalid error message %q", msg)
			}
			return
		}
		switch op.Op {
		case OpSubscribe, OpUnsubscribe:
			if len(op.Symbols) == 0 || op.Fields == 0 || op.Fields&^feed.AllFields != 0 || op.MaxHz < 0 {
				t.Fatalf("accepted bad op %+v", op)
			}
		case OpPing:
		case OpAuth:
			if op.Token == "" {
				t.Fatal("auth without token")
			}
		default:
			t.Fatalf("accepted unknown op %q", op.Op)
		}
		if op.ID != nil && !json.Valid(op.ID) {
			t.Fatalf("id %q is not JSON", op.ID)
		}
		if !json.Valid(encodeAck("subscribed", op.ID, op.Symbols)) || !json.Valid(encodePong(op.ID, 1)) {
			t.Fatal("reply not valid JSON")
		}
	})
}
