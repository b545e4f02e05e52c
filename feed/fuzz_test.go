package feed

import (
	"bytes"
	"context"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
		checkUpdate(t, &u)
	})
}

// checkUpdate fails t unless u satisfies the model's invariants: a valid
// symbol, a non-empty set of known fields, canonical values that re-parse
// to themselves, no negative size, a non-negative ingest time.
func checkUpdate(t *testing.T, u *Update) {
	t.Helper()
	if !ValidSymbol(u.Symbol) || u.Set == 0 || u.Set&^AllFields != 0 || u.TS < 0 {
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
}

// FuzzCSV: no file may panic the CSV adapter; every applied update is
// valid; every row is applied or rejected with its line and a known reason,
// and the counters agree with the result.
func FuzzCSV(f *testing.F) {
	for _, s := range []string{
		"symbol,bid,ask\nAAPL,189.12,189.14\n",
		"symbol,bid,ts\nAAPL,1,1772461800125\nMSFT,2,2026-03-02T14:30:00Z\n",
		"symbol,last,status,time\nX,\"1,5\",halted,2026-01-01T00:00:00Z\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, mapping := range []CSVMapping{{}, {Ignore: []string{"*"}, TS: "ts"}} {
			rec := &recorder{}
			m := NewMetrics(prometheus.NewRegistry())
			a := &CSVAdapter{Sink: rec, Counter: m.Counter("csv", ReasonCSV), Mapping: mapping, MaxRecord: 512, MaxColumns: 32, MaxErrors: 1 << 20}
			res, err := a.Load(context.Background(), bytes.NewReader(data))
			if err != nil {
				if rec.count() != 0 || res.Accepted+res.Rejected != 0 {
					t.Fatalf("refused file applied %d updates: %v", rec.count(), err)
				}
				continue
			}
			for i := range rec.updates {
				checkUpdate(t, &rec.updates[i])
			}
			lines := bytes.Count(data, []byte("\n")) + 1
			prev := 1
			for _, e := range res.Errors {
				if e.Line <= prev || e.Line > lines || e.Err == nil || e.Error() == "" {
					t.Fatalf("error at line %d (previous %d, file has %d): %v", e.Line, prev, lines, e)
				}
				switch e.Err.Reason {
				case ReasonCSV, ReasonSymbol, ReasonField, ReasonValue:
				default:
					t.Fatalf("unknown reason %q", e.Err.Reason)
				}
				prev = e.Line
			}
			counted := 0
			for _, n := range rejected(m, "csv") {
				counted += n
			}
			if res.Accepted != rec.count() || res.Rejected != len(res.Errors) || counted != res.Rejected ||
				int(testutil.ToFloat64(m.Accepted.WithLabelValues("csv"))) != res.Accepted {
				t.Fatalf("result %d/%d, sink %d, counters %v", res.Accepted, res.Rejected, rec.count(), rejected(m, "csv"))
			}
		}
	})
}
