package feed

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// csvAdapter returns an adapter into a fresh recorder and registry.
func csvAdapter(t testing.TB, query string) (*CSVAdapter, *recorder, *Metrics) {
	t.Helper()
	m, err := ParseCSVMapping(query)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	metrics := NewMetrics(prometheus.NewRegistry())
	return &CSVAdapter{Sink: rec, Counter: metrics.Counter("csv", ReasonCSV), Mapping: m}, rec, metrics
}

// rejected reads tickerd_ingest_rejected_total for every reason of adapter.
func rejected(m *Metrics, adapter string) map[string]int {
	out := map[string]int{}
	for _, r := range []string{ReasonJSON, ReasonSymbol, ReasonField, ReasonValue, ReasonCSV, ReasonFrame} {
		if n := int(testutil.ToFloat64(m.Rejected.WithLabelValues(adapter, r))); n > 0 {
			out[r] = n
		}
	}
	return out
}

func sameCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// wire renders an update's fields as FIELD=VALUE in field order.
func wire(u Update) string {
	var parts []string
	for f, rest, ok := u.Set.Next(); ok; f, rest, ok = rest.Next() {
		parts = append(parts, f.String()+"="+u.Values[f].String())
	}
	return u.Symbol + " " + strings.Join(parts, " ")
}

func TestCSVFiles(t *testing.T) {
	cases := []struct {
		file, mapping string
		accepted      int
		reasons       map[string]int
		errs          []string // "LINE:COLUMN" of each rejection, in order
		want          []string // wire() of the applied updates, in order
		ts            []int64  // their TS
	}{
		{
			file: "good.csv", accepted: 5,
			want: []string{
				"AAPL bid=189.12 bidSize=300 ask=189.14 askSize=200 last=189.13 lastSize=100 volume=51234567 time=2026-03-02T14:30:00.123456Z status=trading",
				"MSFT bid=411.5 bidSize=100 ask=411.52 askSize=300",
				"BRK.B bid=412.1 bidSize=5 ask=412.3 askSize=7 last=412.2 lastSize=1 volume=3012455 time=2026-03-02T14:30:01.000000Z status=halted",
				"ES:H6 bid=5100.25 bidSize=12 ask=5100.5 askSize=9",
				"AAPL bid=189.13",
			},
			ts: []int64{
				time.Date(2026, 3, 2, 14, 30, 0, 125e6, time.UTC).UnixMicro(),
				1772461800125000, // milliseconds in the file
				1772461801000000, // microseconds in the file
				0, 0,
			},
		},
		{
			file: "mixed.csv", mapping: "symbol=Ticker&bid=BidPx&bidSize=BidQty&ask=AskPx&askSize=AskQty&ts=Time&ignore=Venue",
			accepted: 3,
			reasons:  map[string]int{ReasonSymbol: 1, ReasonValue: 3, ReasonCSV: 2, ReasonField: 1},
			errs:     []string{"3:1", "4:2", "5:3", "7:0", "8:7", "9:0", "10:0"},
			want: []string{
				"AAPL bid=189.12 bidSize=300 ask=189.14 askSize=200",
				"GOOG bid=170.1 bidSize=10 ask=170.2 askSize=20",
				"META bid=500 bidSize=1 ask=501 askSize=1",
			},
			ts: []int64{time.Date(2026, 3, 2, 14, 30, 0, 0, time.UTC).UnixMicro(), 0, 1772461800125000},
		},
		{
			file: "bad.csv", accepted: 0,
			reasons: map[string]int{ReasonSymbol: 2, ReasonValue: 2, ReasonCSV: 2},
			errs:    []string{"2:1", "3:1", "4:2", "5:2", "6:0", "7:0"},
		},
		{
			file: "truncated.csv", accepted: 2,
			reasons: map[string]int{ReasonCSV: 1},
			errs:    []string{"4:0"},
			want:    []string{"AAPL last=189.13 lastSize=100", "MSFT last=411.5 lastSize=20"},
			ts:      []int64{0, 0},
		},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			a, rec, m := csvAdapter(t, tc.mapping)
			f, err := os.Open("testdata/csv/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			res, err := a.Load(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			if res.Accepted != tc.accepted || res.Rejected != len(tc.errs) || len(res.Errors) != len(tc.errs) {
				t.Fatalf("accepted %d rejected %d (%v), want %d and %d", res.Accepted, res.Rejected, res.Errors, tc.accepted, len(tc.errs))
			}
			for i, e := range res.Errors {
				if got := itoa(e.Line) + ":" + itoa(e.Column); got != tc.errs[i] {
					t.Errorf("error %d at %s, want %s: %v", i, got, tc.errs[i], e)
				}
				if !strings.HasPrefix(e.Error(), "line "+itoa(e.Line)) {
					t.Errorf("error text %q does not name its line", e)
				}
			}
			if got := int(testutil.ToFloat64(m.Accepted.WithLabelValues("csv"))); got != tc.accepted {
				t.Errorf("accepted counter %d, want %d", got, tc.accepted)
			}
			if got := rejected(m, "csv"); !sameCounts(got, tc.reasons) {
				t.Errorf("rejected by reason %v, want %v", got, tc.reasons)
			}
			if len(rec.updates) != len(tc.want) {
				t.Fatalf("sink got %d updates, want %d", len(rec.updates), len(tc.want))
			}
			for i, u := range rec.updates {
				if wire(u) != tc.want[i] || u.TS != tc.ts[i] {
					t.Errorf("update %d:\n got %s ts=%d\nwant %s ts=%d", i, wire(u), u.TS, tc.want[i], tc.ts[i])
				}
			}
		})
	}
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func TestCSVHeaderAndMapping(t *testing.T) {
	cases := []struct {
		name, mapping, header string
		want                  string // in the error; "" = opens
	}{
		{"default", "", "symbol,bid,ask", ""},
		{"case and spaces", "", " Symbol , BID,askSIZE", ""},
		{"unknown column", "", "symbol,bid,venue", `column 3 ("venue") is not symbol, ts or a field`},
		{"unknown column ignored", "ignore=venue", "symbol,bid,venue", ""},
		{"ignore everything else", "ignore=*", "symbol,bid,venue,cond", ""},
		{"no symbol column", "", "ticker,bid", `no column headed "symbol"`},
		{"mapped symbol column", "symbol=Ticker", "ticker,bid", ""},
		{"mapped column missing", "bid=BidPx", "symbol,bid", `no column headed "BidPx"`},
		{"explicit ts missing", "ts=Time", "symbol,bid", `no column headed "Time"`},
		{"field column moved: the old one is unknown", "bid=BidPx", "symbol,BidPx,bid", `column 3 ("bid")`},
		{"duplicate header", "", "symbol,bid,BID", "columns 2 and 3 are both headed"},
		{"no field columns", "", "symbol,ts", "no field columns"},
		{"empty file", "", "", "empty file"},
		{"bare quote", "", `symbol,b"id`, "header row"},
		{"too many columns", "ignore=*", "symbol,bid" + strings.Repeat(",x", DefaultMaxCSVColumns), "columns, at most 256"},
		{"header too long", "ignore=*", "symbol,bid," + strings.Repeat("x", DefaultMaxCSVRecord), "header row longer than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, _, _ := csvAdapter(t, tc.mapping)
			_, err := a.Open(strings.NewReader(tc.header + "\nAAPL,1,2\n"))
			if tc.header == "" {
				_, err = a.Open(strings.NewReader(""))
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	for q, want := range map[string]string{
		"symbol=A&symbol=B": "given 2 times",
		"bidd=X":            "unknown key",
		"bid=":              "needs a column header",
		"bid=X&ask=x":       "mapped twice",
		"%zz":               "invalid URL escape",
	} {
		if _, err := ParseCSVMapping(q); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCSVMapping(%q) = %v, want %q", q, err, want)
		}
	}
	m, err := ParseCSVMapping("symbol=Ticker&BIDSIZE=Bid+Qty&ignore=a,+b")
	if err != nil || m.Symbol != "Ticker" || m.Fields[BidSize] != "Bid Qty" || len(m.Ignore) != 2 || m.Ignore[1] != "b" {
		t.Fatalf("ParseCSVMapping: %+v, %v", m, err)
	}
}

// A row over the record limit is rejected alone, whether it is one long
// line or a quoted cell that runs on over many lines.
func TestCSVRecordLimit(t *testing.T) {
	long := "X," + strings.Repeat("9", 300) + "\n"
	runOn := "Y,\"" + strings.Repeat("1\n", 200) + "\"\n"
	body := "symbol,bid\nA,1\n" + long + "B,2\n" + runOn + "C,3\n\n\n\n" + strings.Repeat("\n", 500) + "D,4\ne,5\n"
	a, rec, m := csvAdapter(t, "")
	a.MaxRecord = 256
	res, err := a.Load(context.Background(), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range rec.updates {
		got = append(got, wire(u))
	}
	if strings.Join(got, "|") != "A bid=1|B bid=2|C bid=3|D bid=4" {
		t.Fatalf("applied %q, result %+v", got, res)
	}
	if res.Errors[0].Line != 3 || !strings.Contains(res.Errors[0].Error(), "row longer than 256 bytes") {
		t.Fatalf("first error %v, want line 3 too long", res.Errors[0])
	}
	// The skipped rows keep the line numbers right: e is on line 711.
	if res.Rejected != 3 || res.Errors[1].Line != 5 || res.Errors[2].Line != 711 || res.Errors[2].Column != 1 ||
		!sameCounts(rejected(m, "csv"), map[string]int{ReasonCSV: 2, ReasonSymbol: 1}) {
		t.Fatalf("errors %v, counters %v", res.Errors, rejected(m, "csv"))
	}
}

// endless is a hostile file: a header, then a quoted cell that never ends.
type endless struct{ left int }

func (e *endless) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	n := min(len(p), e.left)
	for i := range n {
		p[i] = "ab\n"[i%3]
	}
	e.left -= n
	return n, nil
}

// Memory stays bounded by the record limit, not by the file: the heap,
// sampled while a 64 MiB unterminated cell is read, never grows by more
// than a few record limits (encoding/csv alone would hold all 64 MiB).
func TestCSVHostileFileMemory(t *testing.T) {
	a, rec, _ := csvAdapter(t, "")
	hostile := io.MultiReader(strings.NewReader("symbol,bid\nA,1\nB,\""), &endless{left: 64 << 20})
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapAlloc, ms.HeapAlloc
	done, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	res, err := a.Load(context.Background(), hostile)
	close(done)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	if rec.count() != 1 || res.Rejected != 1 {
		t.Fatalf("applied %d, rejected %d", rec.count(), res.Rejected)
	}
	if grew := peak - base; grew > 16<<20 {
		t.Fatalf("heap grew by %d MiB reading a 64 MiB cell", grew>>20)
	}
	t.Logf("heap grew by at most %d KiB; %d rows rejected", (peak-base)>>10, res.Rejected)
}

func TestParseIngestTime(t *testing.T) {
	for in, want := range map[string]int64{
		"1772461800125":                 1772461800125000,
		"1772461800125000":              1772461800125000,
		"99999999999999":                99999999999999000,
		"100000000000000":               100000000000000,
		"2026-03-02T14:30:00.125Z":      1772461800125000,
		"2026-03-02T15:30:00.125+01:00": 1772461800125000,
		"0":                             0,
	} {
		if got, err := ParseIngestTime(in); err != nil || got != want {
			t.Errorf("ParseIngestTime(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-5", "1.5", "yesterday", "1969-12-31T23:59:59Z", "99999999999999999999", "253402300800000000"} {
		if _, err := ParseIngestTime(in); err == nil {
			t.Errorf("ParseIngestTime(%q) accepted", in)
		}
	}
}

func TestCSVRunStopsWithContext(t *testing.T) {
	a, rec, _ := csvAdapter(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := a.Load(ctx, strings.NewReader("symbol,bid\nA,1\n"))
	if !errors.Is(err, context.Canceled) || rec.count() != 0 {
		t.Fatalf("err %v, applied %d", err, rec.count())
	}
	// A read error is the load's error, with what was applied before it.
	r := io.MultiReader(strings.NewReader("symbol,bid\nA,1\n"), errReader{})
	res, err := a.Load(context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || res.Accepted != 1 {
		t.Fatalf("err %v, result %+v", err, res)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func BenchmarkCSVLoad(b *testing.B) {
	var file bytes.Buffer
	file.WriteString("symbol,bid,bidSize,ask,askSize,last,volume\n")
	const rows = 10_000
	for i := range rows {
		file.WriteString("SYM" + itoa(i%500) + ",189." + itoa(10+i%80) + ",300,189.14,200,189.13," + itoa(51234567+i) + "\n")
	}
	data := file.Bytes()
	a := &CSVAdapter{Sink: discard{}}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		res, err := a.Load(context.Background(), bytes.NewReader(data))
		if err != nil || res.Accepted != rows {
			b.Fatal(res, err)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "updates/s")
}

// discard is a Sink that keeps nothing.
type discard struct{}

func (discard) Apply(*Update) bool { return true }
