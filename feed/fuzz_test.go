package feed

import (
	"testing"
	"unicode/utf8"
)

// FuzzParseLine: no input may panic, and an accepted line must satisfy the
// model's invariants and re-parse to the same values from its wire form.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		`{"symbol":"AAPL","fields":{"bid":"189.12","ask":"189.14","bidSize":300}}`,
		`{"symbol":"BRK.B","fields":{"last":-1.5e2,"time":"2026-01-01T00:00:00Z","status":"halted"},"ts":1}`,
		`{"symbol":"X","fields":{"bid":"1e9999"}}`,
		`{"symbol":"X","fields":{}}`,
		`[]`, `null`, `{"symbol":"X","fields":{"bid":"0.000000000000000001"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var u Update
		err := ParseLine(b, &u)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if !ValidSymbol(u.Symbol) || u.Set == 0 || u.Set&^AllFields != 0 {
			t.Fatalf("accepted invalid update %+v", u)
		}
		for fld, rest, ok := u.Set.Next(); ok; fld, rest, ok = rest.Next() {
			v := u.Values[fld]
			if v.IsZero() || len(v.String()) > 64 || !utf8.ValidString(v.String()) {
				t.Fatalf("%s: bad canonical text %q", fld, v.String())
			}
			again, err := ParseValue(fld, []byte(`"`+v.String()+`"`))
			if err != nil || !again.Equal(v) {
				t.Fatalf("%s: %q does not round-trip: %v", fld, v.String(), err)
			}
			if fld.Kind() == KindSize && v.Decimal().Sign() < 0 {
				t.Fatalf("negative size accepted: %s", v)
			}
		}
	})
}
