package feed

import (
	"bytes"
	"context"
	"fmt"
	"strings"
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

// fuzzMappings are the mappings FuzzMapper maps with.
func fuzzMappings(t testing.TB) []*Mapping {
	var ms []*Mapping
	for _, name := range MappingNames() {
		m, err := LoadMapping(name)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	m, err := ParseMapping([]byte(customMapping))
	if err != nil {
		t.Fatal(err)
	}
	return append(ms, m)
}

// checkMapped maps msg with m and fails t unless every update is valid,
// every rejection an *Error with a known reason, and the outcomes those of
// the encoding/json reference.
func checkMapped(t *testing.T, m *Mapping, msg []byte) {
	t.Helper()
	var got []string
	ignored := m.NewMapper().Map(msg,
		func(u *Update) {
			if u.TS != 0 {
				t.Fatalf("mapped update carries ts %d", u.TS)
			}
			checkUpdate(t, u)
			got = append(got, "update "+wire(*u))
		},
		func(err error) {
			fe, ok := err.(*Error)
			if !ok || err.Error() == "" {
				t.Fatalf("rejection %T %v", err, err)
			}
			switch fe.Reason {
			case ReasonJSON, ReasonSymbol, ReasonField, ReasonValue:
			default:
				t.Fatalf("unknown reason %q", fe.Reason)
			}
			got = append(got, "reject "+fe.Reason)
		})
	if ignored > 0 {
		got = append(got, fmt.Sprintf("ignored %d", ignored))
	}
	if want := referenceMap(m, msg); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("mapping %s, message %q:\nwalk:          %q\nencoding/json: %q", m.Name, msg, got, want)
	}
}

// FuzzMapper: no message may panic the mapper; what it finds is what
// encoding/json finds, and every update it makes is valid.
func FuzzMapper(f *testing.F) {
	for _, name := range []string{"binance", "coinbase"} {
		for _, frame := range readFrames(f, "testdata/ws/"+name+".frames") {
			f.Add(frame)
		}
	}
	ms := fuzzMappings(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, m := range ms {
			checkMapped(t, m, msg)
		}
	})
}

// FuzzMapping: no config may panic the parser, and a config it accepts
// maps the recorded samples without panicking, as encoding/json would,
// into valid updates.
func FuzzMapping(f *testing.F) {
	var samples [][]byte
	for _, name := range MappingNames() {
		data, err := builtinMappings.ReadFile("mappings/" + name + ".json")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		samples = append(samples, readFrames(f, "testdata/ws/"+name+".frames")...)
	}
	f.Add([]byte(customMapping))
	samples = append(samples, []byte(`{"data":[{"kind":1,"inst":{"id":"XBT/USD"},"q":[["1",2],[3]],"px":4,"t":5,"st":"halted"}]}`))
	f.Fuzz(func(t *testing.T, config []byte) {
		m, err := ParseMapping(config)
		if err != nil {
			if m != nil || err.Error() == "" {
				t.Fatalf("ParseMapping = %v, %v", m, err)
			}
			return
		}
		if m.set == 0 || m.slots != len(m.paths) || m.slots < 1+m.set.Len()+len(m.filters) {
			t.Fatalf("accepted mapping without fields or slots: %+v", m)
		}
		for _, msg := range samples {
			checkMapped(t, m, msg)
		}
	})
}

// FuzzPlainDecimal: the shortcut for plain decimals gives what ParseDecimal
// and DecimalValue give, coefficient, exponent and text alike.
func FuzzPlainDecimal(f *testing.F) {
	for _, s := range []string{"189.12", "189.120", "-0.50", "007", "0.000", "-0", "123456789012345678", "1234567890123456789", "0.000000000000000001", "1.", ".5", "1e3", "-", "", "1.2.3", "00.10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := plainDecimal(s)
		if !ok {
			return
		}
		d, err := ParseDecimal(s)
		if err != nil {
			t.Fatalf("plainDecimal(%q) accepted what ParseDecimal rejects: %v", s, err)
		}
		want := DecimalValue(d)
		if v.String() != want.String() || v.num.Exponent() != d.Exponent() || v.num.Coefficient().Cmp(d.Coefficient()) != 0 {
			t.Fatalf("plainDecimal(%q) = %s (%s e%d), want %s (%s e%d)", s, v, v.num.Coefficient(), v.num.Exponent(), want, d.Coefficient(), d.Exponent())
		}
	})
}

// FuzzParseLineSimple: a line the fast path takes reads exactly as the
// general path (encoding/json) reads it.
func FuzzParseLineSimple(f *testing.F) {
	for _, s := range []string{
		`{"symbol":"AAPL","fields":{"bid":"189.12","ask":"189.14","bidSize":300}}`,
		`{"symbol":"AAPL","fields":{"bid":"189.12","bid":"1"},"ts":1}`,
		`{"symbol":"AAPL","fields":{"bid":"1e3"},"ts":007}`,
		`{"symbol":"AAPL","fields":{"bid":1.5},"ts":1}`,
		`{"symbol":"AAPL","fields":{"status":"halted","time":"2026-11-22T04:00:00.5Z"},"ts":1}`,
		`{"symbol":"A\u0041","fields":{"bid":"1"},"ts":1}`,
		`{"symbol":"AAPL","fields":{},"ts":1}`,
		`{"symbol":"AAPL","fields":{"bid":"1"},"ts":99999999999999999999}`,
		`{ "symbol" : "AAPL" , "fields" : { "bid" : -0.5e-2 , "ask": "2" } , "ts" : 0 }`,
		"{\"symbol\":\"AAPL\",\"fields\":{\"bid\":01}}",
		`{"symbol":"AAPL","fields":{"bid":"1"}} x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, general Update
		if !parseSimple(b, &fast) {
			return
		}
		if err := parseGeneral(b, &general); err != nil {
			t.Fatalf("the fast path took %q, the general path rejects it: %v", b, err)
		}
		if fast.Symbol != general.Symbol || fast.TS != general.TS || fast.Set != general.Set {
			t.Fatalf("%q: fast %+v, general %+v", b, fast, general)
		}
		for fld := range NumFields {
			if !fast.Values[fld].Equal(general.Values[fld]) {
				t.Fatalf("%q: %s fast %q, general %q", b, fld, fast.Values[fld], general.Values[fld])
			}
		}
	})
}
