package feed

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidSymbol(t *testing.T) {
	for s, want := range map[string]bool{
		"AAPL": true, "BRK.B": true, "ES:Z6": true, "X": true, "0700.HK": true, "A_B-C": true,
		strings.Repeat("A", 32): true, strings.Repeat("A", 33): false,
		"": false, "aapl": false, ".A": false, "-A": false, "A B": false, "A/B": false, "Ä": false,
	} {
		if got := ValidSymbol(s); got != want {
			t.Errorf("ValidSymbol(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestParseLine(t *testing.T) {
	cases := []struct {
		name   string
		line   string
		reason string           // "" = accepted
		want   map[Field]string // canonical values when accepted
	}{
		{"strings", `{"symbol":"AAPL","fields":{"bid":"189.12","ask":"189.140"}}`, "",
			map[Field]string{Bid: "189.12", Ask: "189.14"}},
		{"JSON numbers are decimals, not floats", `{"symbol":"AAPL","fields":{"bid":0.1,"bidSize":300,"last":1234567890.123456789}}`, "",
			map[Field]string{Bid: "0.1", BidSize: "300", Last: "1234567890.123456789"}},
		{"exponents become plain notation", `{"symbol":"X","fields":{"bid":"1.5e3","ask":2E-2}}`, "",
			map[Field]string{Bid: "1500", Ask: "0.02"}},
		{"negative price and change", `{"symbol":"CL","fields":{"last":"-37.63","change":"-55.9"}}`, "",
			map[Field]string{Last: "-37.63", Change: "-55.9"}},
		{"time normalised to UTC µs", `{"symbol":"X","fields":{"time":"2026-03-01T10:00:00.5+01:00"}}`, "",
			map[Field]string{Time: "2026-03-01T09:00:00.500000Z"}},
		{"status", `{"symbol":"X","fields":{"status":"halted"}}`, "", map[Field]string{Status: "halted"}},
		{"ts kept", `{"symbol":"X","fields":{"bid":"1"},"ts":1700000000000000}`, "", map[Field]string{Bid: "1"}},
		{"not JSON", `{"symbol":`, ReasonJSON, nil},
		{"array", `[1,2]`, ReasonJSON, nil},
		{"unknown key", `{"symbol":"X","fields":{"bid":"1"},"extra":1}`, ReasonJSON, nil},
		{"missing symbol", `{"fields":{"bid":"1"}}`, ReasonSymbol, nil},
		{"bad symbol", `{"symbol":"aapl","fields":{"bid":"1"}}`, ReasonSymbol, nil},
		{"symbol not a string", `{"symbol":7,"fields":{"bid":"1"}}`, ReasonSymbol, nil},
		{"missing fields", `{"symbol":"X"}`, ReasonField, nil},
		{"empty fields", `{"symbol":"X","fields":{}}`, ReasonField, nil},
		{"unknown field", `{"symbol":"X","fields":{"bidd":"1"}}`, ReasonField, nil},
		{"non-decimal", `{"symbol":"X","fields":{"bid":"abc"}}`, ReasonValue, nil},
		{"NaN", `{"symbol":"X","fields":{"bid":"NaN"}}`, ReasonValue, nil},
		{"hex", `{"symbol":"X","fields":{"bid":"0x10"}}`, ReasonValue, nil},
		{"negative size", `{"symbol":"X","fields":{"bidSize":-5}}`, ReasonValue, nil},
		{"huge exponent", `{"symbol":"X","fields":{"bid":"1e9999"}}`, ReasonValue, nil},
		{"too many decimals", `{"symbol":"X","fields":{"bid":"0.0000000000000000001"}}`, ReasonValue, nil},
		{"boolean price", `{"symbol":"X","fields":{"bid":true}}`, ReasonValue, nil},
		{"null price", `{"symbol":"X","fields":{"bid":null}}`, ReasonValue, nil},
		{"bad time", `{"symbol":"X","fields":{"time":"yesterday"}}`, ReasonValue, nil},
		{"time before year 0 in UTC", `{"symbol":"X","fields":{"time":"0000-01-01T00:00:00+01:00"}}`, ReasonValue, nil},
		{"time after 9999 in UTC", `{"symbol":"X","fields":{"time":"9999-12-31T23:00:00-01:00"}}`, ReasonValue, nil},
		{"bad status", `{"symbol":"X","fields":{"status":"open"}}`, ReasonValue, nil},
		{"negative ts", `{"symbol":"X","fields":{"bid":"1"},"ts":-1}`, ReasonJSON, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var u Update
			err := ParseLine([]byte(tc.line), &u)
			if tc.reason != "" {
				fe, ok := err.(*Error)
				if !ok || fe.Reason != tc.reason {
					t.Fatalf("err = %v, want reason %s", err, tc.reason)
				}
				if fe.Error() == "" {
					t.Fatal("empty error text")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Set.Len() != len(tc.want) {
				t.Fatalf("set %b has %d fields, want %d", u.Set, u.Set.Len(), len(tc.want))
			}
			for f, v := range tc.want {
				if got := u.Values[f].String(); got != v {
					t.Errorf("%s = %q, want %q", f, got, v)
				}
			}
		})
	}
}

func TestValueEqualityIsNumeric(t *testing.T) {
	a, _ := ParseValue(Bid, json.RawMessage(`"1.50"`))
	b, _ := ParseValue(Bid, json.RawMessage(`1.5`))
	c, _ := ParseValue(Bid, json.RawMessage(`"15e-1"`))
	if !a.Equal(b) || !b.Equal(c) {
		t.Fatalf("%q %q %q should be equal", a, b, c)
	}
	if !a.Decimal().Equal(c.Decimal()) {
		t.Fatal("decimals differ")
	}
}

func TestFieldSetWalk(t *testing.T) {
	s := FieldSet(0).With(Ask).With(Status).With(Bid)
	var got []Field
	for f, rest, ok := s.Next(); ok; f, rest, ok = rest.Next() {
		got = append(got, f)
	}
	if len(got) != 3 || got[0] != Bid || got[1] != Ask || got[2] != Status {
		t.Fatalf("walk = %v", got)
	}
	for f := range NumFields {
		g, ok := ParseField(f.String())
		if !ok || g != f {
			t.Fatalf("ParseField(%q) = %v", f, g)
		}
	}
}

func BenchmarkParseLine(b *testing.B) {
	line := []byte(`{"symbol":"AAPL","fields":{"bid":"189.12","ask":"189.14","bidSize":300,"askSize":200}}`)
	var u Update
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for i := 0; i < b.N; i++ {
		if err := ParseLine(line, &u); err != nil {
			b.Fatal(err)
		}
	}
}

// The plain-ASCII shortcut of jsonString must decode exactly as
// encoding/json does, and ParseText must agree with ParseValue on strings.
func TestJSONStringAndParseText(t *testing.T) {
	for _, raw := range []string{
		`"189.12"`, `""`, `"a\"b"`, `"\u0031.5"`, `"caf\u00e9"`, "\"tab\there\"", `"\\"`, `"x"y"`, `"`, `"é"`,
	} {
		want, werr := "", json.Unmarshal([]byte(raw), new(string))
		if werr == nil {
			_ = json.Unmarshal([]byte(raw), &want)
		}
		got, ok := jsonString([]byte(raw))
		if ok != (werr == nil) || got != want {
			t.Errorf("jsonString(%s) = %q, %v; encoding/json: %q, %v", raw, got, ok, want, werr)
		}
	}
	for _, tc := range []struct {
		f    Field
		text string
	}{{Bid, "1.50"}, {Bid, "1e3"}, {BidSize, "-1"}, {Time, "2026-01-02T03:04:05Z"}, {Status, "halted"}, {Status, "open"}, {Bid, ""}} {
		a, aerr := ParseText(tc.f, tc.text)
		raw, _ := json.Marshal(tc.text)
		b, berr := ParseValue(tc.f, raw)
		if (aerr == nil) != (berr == nil) || !a.Equal(b) {
			t.Errorf("%s %q: ParseText = %q, %v; ParseValue = %q, %v", tc.f, tc.text, a, aerr, b, berr)
		}
	}
}
