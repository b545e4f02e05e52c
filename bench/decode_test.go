package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

// got is a Msg with owned strings, for comparisons.
type got struct {
	Kind                        Kind
	Type, Symbol, Code, Session string
	HasType, HasSymbol          bool
	Seq, TS, ID                 int64
	Fields, Symbols             string
}

func own(m *Msg) got {
	return got{
		Kind: m.Kind, Type: string(m.Type), Symbol: string(m.Symbol), Code: string(m.Code),
		Session: string(m.Session), HasType: m.Type != nil, HasSymbol: m.Symbol != nil,
		Seq: m.Seq, TS: m.TS, ID: m.ID, Fields: string(m.Fields), Symbols: string(m.Symbols),
	}
}

func decodeAll(data []byte) ([]got, error) {
	var out []got
	err := DecodeFrame(data, func(m *Msg) { out = append(out, own(m)) })
	return out, err
}

func TestDecodeFrame(t *testing.T) {
	upd := got{Kind: KindUpdate, Type: "update", Symbol: "AAPL", HasType: true, HasSymbol: true,
		Seq: 57, TS: 1700000000123456, Fields: `{"bid":"189.13"}`}
	snap := got{Kind: KindSnapshot, Type: "snapshot", Symbol: "MSFT", HasType: true, HasSymbol: true,
		Seq: 42, TS: 1700000000000001, Fields: `{"bid":"1","status":"trading"}`}
	tests := []struct {
		name string
		in   string
		want []got
		bad  bool
	}{
		{name: "single", in: `{"type":"update","symbol":"AAPL","seq":57,"ts":1700000000123456,"fields":{"bid":"189.13"}}`, want: []got{upd}},
		{name: "array", in: ` [ {"type":"update","symbol":"AAPL","seq":57,"ts":1700000000123456,"fields":{"bid":"189.13"}},` +
			`{"ts":1700000000000001,"fields":{"bid":"1","status":"trading"},"seq":42,"symbol":"MSFT","type":"snapshot"} ]` + "\n", want: []got{upd, snap}},
		{name: "empty array", in: `[]`},
		{name: "error", in: `{"type":"error","id":1,"code":"bad_request","symbol":"x y","message":"bad symbol"}`,
			want: []got{{Kind: KindError, Type: "error", HasType: true, ID: 1, Code: "bad_request", Symbol: "x y", HasSymbol: true}}},
		{name: "close", in: `{"type":"close","code":"shutdown","message":"bye"}`,
			want: []got{{Kind: KindClose, Type: "close", HasType: true, Code: "shutdown"}}},
		{name: "subscribed", in: `{"type":"subscribed","id":1,"symbols":["A","B"]}`,
			want: []got{{Kind: KindSubscribed, Type: "subscribed", HasType: true, ID: 1, Symbols: `["A","B"]`}}},
		{name: "escapes", in: `{"type":"upd\u0061te","symbol":"A\/B","delayed":true,"extra":[1,{"x":null}]}`,
			want: []got{{Kind: KindUpdate, Type: "update", HasType: true, Symbol: "A/B", HasSymbol: true}}},
		{name: "unknown type", in: `{"type":"news"}`, want: []got{{Kind: KindOther, Type: "news", HasType: true}}},
		{name: "nulls", in: `{"type":null,"symbol":null,"seq":null,"fields":null}`, want: []got{{}}},
		{name: "number", in: `42`, bad: true},
		{name: "array of numbers", in: `[1]`, bad: true},
		{name: "truncated", in: `{"type":"update","seq":5`, bad: true},
		{name: "trailing", in: `{"type":"update"} {}`, bad: true},
		{name: "float seq", in: `{"seq":5.5}`, bad: true},
		{name: "exp ts", in: `{"ts":1e6}`, bad: true},
		{name: "string seq", in: `{"seq":"5"}`, bad: true},
		{name: "overflow", in: `{"seq":92233720368547758070}`, bad: true},
		{name: "fields not object", in: `{"fields":[1]}`, bad: true},
		{name: "control char", in: "{\"symbol\":\"A\x01\"}", bad: true},
		{name: "empty", in: ``, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := decodeAll([]byte(tt.in))
			if tt.bad {
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("err = %v, want a SyntaxError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(tt.want) {
				t.Fatalf("got %d messages %+v, want %d", len(out), out, len(tt.want))
			}
			for i := range out {
				if out[i] != tt.want[i] {
					t.Errorf("message %d:\n got %+v\nwant %+v", i, out[i], tt.want[i])
				}
			}
		})
	}
}

func TestDecodePoll(t *testing.T) {
	in := `{"session":"s1","messages":[{"type":"session","session":"s1","resume":"r"},` +
		`[{"type":"update","symbol":"A","seq":2,"ts":5},{"type":"update","symbol":"B","seq":3,"ts":6}]]}`
	var kinds []Kind
	id, err := DecodePoll([]byte(in), func(m *Msg) { kinds = append(kinds, m.Kind) })
	if err != nil {
		t.Fatal(err)
	}
	if id != "s1" || len(kinds) != 3 || kinds[0] != KindSession || kinds[2] != KindUpdate {
		t.Fatalf("session %q kinds %v", id, kinds)
	}
	if _, err := DecodePoll([]byte(`{"session":"s","messages":[1]}`), func(*Msg) {}); err == nil {
		t.Fatal("a number entry was accepted")
	}
	if id, err := DecodePoll([]byte(`{"session":"s","messages":null}`), func(*Msg) {}); err != nil || id != "s" {
		t.Fatalf("null messages: %q %v", id, err)
	}
}

func TestEachField(t *testing.T) {
	var b strings.Builder
	err := EachField([]byte(`{"bid":"189.12","bidSize":300,"status":"tr\u0061ding","low":null}`), func(k, v []byte) error {
		b.WriteString(string(k) + "=" + string(v) + ";")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "bid=189.12;bidSize=300;status=trading;low=;"; b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
	if err := EachField([]byte(`{"bid":true}`), func(k, v []byte) error { return nil }); err == nil {
		t.Fatal("a bool value was accepted")
	}
}

func TestDecodeFrameAllocs(t *testing.T) {
	frame := []byte(`[{"type":"update","symbol":"AAPL","seq":57,"ts":1700000000123456,"fields":{"bid":"189.13","ask":"189.15"}},` +
		`{"type":"update","symbol":"MSFT","seq":9,"ts":1700000000123457,"fields":{"last":"401.5","volume":"120000"}}]`)
	var n int
	fn := func(m *Msg) { n += len(m.Symbol) }
	d := new(Decoder)
	allocs := testing.AllocsPerRun(100, func() {
		if err := d.Frame(frame, fn); err != nil {
			t.Fatal(err)
		}
		_ = EachField(frame[bytes.Index(frame, []byte(`{"bid"`)):bytes.Index(frame, []byte(`}}`))+1], func(k, v []byte) error { return nil })
	})
	if allocs != 0 {
		t.Fatalf("DecodeFrame allocated %.1f times per frame", allocs)
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	frame := []byte(`{"type":"update","symbol":"AAPL","seq":57,"ts":1700000000123456,"fields":{"bid":"189.13","ask":"189.15","bidSize":"300"}}`)
	fn := func(*Msg) {}
	d := new(Decoder)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := d.Frame(frame, fn); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeFrameStdlib is the encoding/json baseline DecodeFrame is
// measured against.
func BenchmarkDecodeFrameStdlib(b *testing.B) {
	frame := []byte(`{"type":"update","symbol":"AAPL","seq":57,"ts":1700000000123456,"fields":{"bid":"189.13","ask":"189.15","bidSize":"300"}}`)
	var m struct {
		Type, Symbol string
		Seq, TS      int64
		Fields       json.RawMessage
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := json.Unmarshal(frame, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// refDecode is the reference DecodeFrame is fuzzed against: encoding/json,
// reading keys in order (so that duplicates behave alike: each occurrence is
// type-checked and the last one wins, null sets the zero value).
func refDecode(data []byte) ([]got, error) {
	if !json.Valid(data) {
		return nil, errors.New("invalid JSON")
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if trimmed[0] == '{' {
		m, err := refMsg(trimmed)
		if err != nil {
			return nil, err
		}
		return []got{m}, nil
	}
	if trimmed[0] != '[' {
		return nil, errors.New("not an object or array")
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(trimmed, &elems); err != nil {
		return nil, err
	}
	var out []got
	for _, e := range elems {
		if e[0] != '{' {
			return nil, errors.New("element not an object")
		}
		m, err := refMsg(e)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func refMsg(obj []byte) (got, error) {
	var g got
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // '{'
		return g, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return g, err
		}
		key := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return g, err
		}
		null := string(raw) == "null"
		str := func(dst *string, has *bool) error {
			*dst = ""
			if has != nil {
				*has = !null
			}
			if null {
				return nil
			}
			return json.Unmarshal(raw, dst)
		}
		num := func(dst *int64) error {
			*dst = 0
			if null {
				return nil
			}
			return json.Unmarshal(raw, dst)
		}
		switch key {
		case "type":
			err = str(&g.Type, &g.HasType)
			g.Kind = kindOf([]byte(g.Type))
		case "symbol":
			err = str(&g.Symbol, &g.HasSymbol)
		case "code":
			err = str(&g.Code, nil)
		case "session":
			err = str(&g.Session, nil)
		case "seq":
			err = num(&g.Seq)
		case "ts":
			err = num(&g.TS)
		case "id":
			err = num(&g.ID)
		case "fields":
			g.Fields = ""
			if !null {
				if raw[0] != '{' {
					err = errors.New("fields not an object")
				}
				g.Fields = string(raw)
			}
		case "symbols":
			g.Symbols = ""
			if !null {
				g.Symbols = string(raw)
			}
		}
		if err != nil {
			return g, err
		}
	}
	_, err := dec.Token() // '}'
	if err == nil {
		_, err = dec.Token()
		if err == io.EOF {
			err = nil
		}
	}
	return g, err
}

func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"update","symbol":"AAPL","seq":57,"ts":1700000000123456,"fields":{"bid":"189.13"}}`,
		`[{"type":"heartbeat","ts":1},{"type":"pong","id":3}]`,
		`{"type":"snapshot","symbol":"A","seq":1,"ts":2,"fields":{},"delayed":true}`,
		`{"seq":"1","seq":1}`,
		`{"symbol":"\ud83d\ude00\u00e9","type":"\u0000"}`,
		"{\"symbol\":\"\xff\"}",
		`[{"type":"update"},3]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := decodeAll(data)
		want, werr := refDecode(data)
		if (err == nil) != (werr == nil) {
			t.Fatalf("DecodeFrame err = %v, encoding/json err = %v", err, werr)
		}
		if err != nil {
			return
		}
		if len(out) != len(want) {
			t.Fatalf("got %d messages, want %d", len(out), len(want))
		}
		for i := range out {
			if out[i] != want[i] {
				t.Fatalf("message %d:\n got %+v\nwant %+v", i, out[i], want[i])
			}
		}
	})
}
