package feed

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// readFrames reads a recorded sample: one WebSocket frame per line.
func readFrames(t testing.TB, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
}

// outcomes maps msg and describes each result: "update SYMBOL FIELD=VALUE
// ...", "reject REASON: ERROR", then "ignored N" when N > 0.
func outcomes(mp *Mapper, msg []byte) []string {
	var out []string
	ignored := mp.Map(msg,
		func(u *Update) { out = append(out, "update "+wire(*u)) },
		func(err error) { out = append(out, "reject "+err.(*Error).Reason+": "+err.Error()) })
	if ignored > 0 {
		out = append(out, fmt.Sprintf("ignored %d", ignored))
	}
	return out
}

// The built-in mappings against recorded messages in their exchanges'
// documented formats; the results are in testdata/ws/NAME.golden.
func TestBuiltinMappings(t *testing.T) {
	if names := strings.Join(MappingNames(), ","); names != "binance,coinbase" {
		t.Fatalf("built-in mappings %s", names)
	}
	for _, name := range MappingNames() {
		t.Run(name, func(t *testing.T) {
			m, err := LoadMapping(name)
			if err != nil {
				t.Fatal(err)
			}
			mp := m.NewMapper()
			var got bytes.Buffer
			for i, frame := range readFrames(t, "testdata/ws/"+name+".frames") {
				for _, o := range outcomes(mp, frame) {
					fmt.Fprintf(&got, "frame %d: %s\n", i+1, o)
				}
			}
			golden := "testdata/ws/" + name + ".golden"
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Fatalf("mapped:\n%s\nwant (%s):\n%s", got.String(), golden, want)
			}
		})
	}
	// The golden files are read by people; pin the essentials here too.
	must := map[string][]string{
		"binance": {
			"update BTC-USDT bid=93837.65 bidSize=3.21455 ask=93837.66 askSize=0.51209 last=93837.66 lastSize=0.0015 volume=18234.55012 open=94350 high=95012 low=93500.01 change=-512.34 changePct=-0.543 time=2026-01-01T00:00:00.123000Z",
			"update ETH-BTC bid=0.03489 ",
			"update PEPE-USDT bid=0.00001172 bidSize=812345678 ",
			"update SOL-USDC ",
		},
		"coinbase": {
			"update BTC-USD bid=93812.44 bidSize=0.051234 ask=93812.45 askSize=0.398 last=93812.45 lastSize=0.00021 volume=8123.45678901 open=94310.01 high=95000 low=93500 time=2026-01-01T00:00:00.123456Z",
			"update BTC-USD bid=93812.99 bidSize=0.1 ask=93813 askSize=0.2 last=93813 lastSize=0.01 ",
		},
	}
	for name, lines := range must {
		m, _ := LoadMapping(name)
		mp := m.NewMapper()
		var all []string
		for _, frame := range readFrames(t, "testdata/ws/"+name+".frames") {
			all = append(all, outcomes(mp, frame)...)
		}
		text := strings.Join(all, "\n")
		for _, want := range lines {
			if !strings.Contains(text, want) {
				t.Errorf("%s: no %q in\n%s", name, want, text)
			}
		}
	}
}

func TestParsePath(t *testing.T) {
	for in, want := range map[string]string{
		"":             "",
		"s":            "s",
		"data.b":       "data b",
		"data[0].c":    "data [0] c",
		"[2].s":        "[2] s",
		"a[1][2]":      "a [1] [2]",
		"k-1.x_y:z":    "k-1 x_y:z",
		"a..b":         "error",
		".a":           "error",
		"a.":           "error",
		"a[":           "error",
		"a[x]":         "error",
		"a[-1]":        "error",
		"a[+1]":        "error",
		"a[1]b":        "error",
		"a]":           "error",
		"a[1048576]":   "error",
		"a.[0]":        "error",
		"a[01].b[1].c": "a [1] b [1] c",
	} {
		steps, err := parsePath(in)
		got := "error"
		if err == nil {
			var parts []string
			for _, st := range steps {
				if st.key != "" {
					parts = append(parts, st.key)
				} else {
					parts = append(parts, fmt.Sprintf("[%d]", st.index))
				}
			}
			got = strings.Join(parts, " ")
		}
		if got != want {
			t.Errorf("parsePath(%q) = %q (%v), want %q", in, got, err, want)
		}
	}
}

// The walk finds what encoding/json finds, skipping what is off the paths.
func TestWalk(t *testing.T) {
	paths := []string{"a", "b.c", "d[1]", "d[2].e", "", "f[0][1]", "g"}
	root := &pathNode{}
	for i, p := range paths {
		steps, err := parsePath(p)
		if err != nil {
			t.Fatal(err)
		}
		root.add(steps, i)
	}
	cases := []struct{ json, want string }{
		{`{"a":1,"b":{"c":"x"},"d":[0,true,{"e":null}]}`, `1|"x"|true|null|*|-|-`},
		{` { "z" : [ {"a":2} , "}" ] , "a" : "\"}" , "g":{"h":[1,{"i":"]"}]} } `, `"\"}"|-|-|-|*|-|{"h":[1,{"i":"]"}]}`},
		{`{"\u0061":"escaped key","b":{"c":1},"b":{"x":2}}`, `"escaped key"|-|-|-|*|-|-`}, // the last "b" wins, whole
		{`{"f":[[1,2],[3]],"d":[]}`, `-|-|-|-|*|2|-`},
		{`[1,2,3]`, `-|-|-|-|*|-|-`},
		{`"a"`, `-|-|-|-|*|-|-`},
		{`{"a":-1.5e+3,"b":{"c":[1,{"c":2}]}}`, `-1.5e+3|[1,{"c":2}]|-|-|*|-|-`},
	}
	for _, tc := range cases {
		spans := make([][]byte, len(paths))
		end := root.walk([]byte(tc.json), 0, spans)
		var parts []string
		for i, s := range spans {
			switch {
			case paths[i] == "":
				if string(s) != strings.TrimSpace(tc.json) {
					t.Errorf("%s: root span %q", tc.json, s)
				}
				parts = append(parts, "*")
			case s == nil:
				parts = append(parts, "-")
			default:
				parts = append(parts, string(s))
			}
		}
		if got := strings.Join(parts, "|"); got != tc.want {
			t.Errorf("walk(%s) = %s, want %s", tc.json, got, tc.want)
		}
		if rest := strings.TrimSpace(tc.json[end:]); rest != "" {
			t.Errorf("walk(%s) ended before %q", tc.json, rest)
		}
	}
}

func TestSymbolRewrite(t *testing.T) {
	r, err := newSymbolRewrite(&rewriteConfig{
		Map:           map[string]string{"XBTUSD": "BTC-USD"},
		Upper:         true,
		Replace:       [][]string{{"/", ""}, {" ", "_"}},
		QuoteSuffixes: []string{"BTC", "USDT", "FDUSD", "USD"},
		Separator:     "-",
		Prefix:        "X:",
	})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"XBTUSD":   "BTC-USD", // the table, final
		"btcusdt":  "X:BTC-USDT",
		"BTCFDUSD": "X:BTC-FDUSD", // longest suffix first
		"ETH/BTC":  "X:ETH-BTC",
		"ETH-BTC":  "X:ETH-BTC", // already split
		"USDT":     "X:USDT",    // a suffix alone stays
		"a b":      "X:A_B",
	} {
		if got := r.apply(in); got != want {
			t.Errorf("apply(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseMappingErrors(t *testing.T) {
	base := `"symbol":"s","fields":{"bid":"b"}`
	cases := map[string]string{
		`{` + base + `}`: "",
		`{` + base + `,"timeUnit":"ns","records":"data[0]"}`:           "",
		`{"fields":{"bid":"b"}}`:                                       `"symbol": want the path`,
		`{"symbol":"","fields":{"bid":"b"}}`:                           `"symbol": want the path`,
		`{"symbol":"s"}`:                                               `"fields": map at least one`,
		`{"symbol":"s","fields":{"bidd":"b"}}`:                         "fields.bidd: unknown field",
		`{"symbol":"s","fields":{"bid":"a..b"}}`:                       "fields.bid: path",
		`{"symbol":"s[","fields":{"bid":"b"}}`:                         "symbol: path",
		`{` + base + `,"filter":{"x]":"1"}}`:                           "filter.x]",
		`{` + base + `,"records":"[x]"}`:                               "records: path",
		`{` + base + `,"timeUnit":"h"}`:                                "timeUnit",
		`{` + base + `,"extra":1}`:                                     `unknown field "extra"`,
		`{` + base + `} {}`:                                            "data after",
		`[]`:                                                           "cannot unmarshal",
		`{` + base + `,"symbolRewrite":{"quoteSuffixes":["USDT"]}}`:    "separator",
		`{` + base + `,"symbolRewrite":{"map":{"a":"bad sym"}}}`:       "map:",
		`{` + base + `,"symbolRewrite":{"replace":[["a"]]}}`:           "replace:",
		`{` + base + `,"symbolRewrite":{"replace":[["", "x"]]}}`:       "replace:",
		`{` + base + `,"symbolRewrite":{"prefix":"-X"}}`:               "prefix",
		`{` + base + `,"symbolRewrite":{"upper":true,"case":"lower"}}`: `unknown field "case"`,
	}
	for in, want := range cases {
		_, err := ParseMapping([]byte(in))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", in, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: err %v, want %q", in, err, want)
		}
	}
	if _, err := LoadMapping("kraken"); err == nil || !strings.Contains(err.Error(), "have binance, coinbase") {
		t.Errorf("unknown name: %v", err)
	}
	if _, err := LoadMapping("./nonexistent.json"); err == nil {
		t.Error("missing file accepted")
	}
	path := t.TempDir() + "/my-feed.json"
	os.WriteFile(path, []byte(`{`+base+`}`), 0o644)
	if m, err := LoadMapping(path); err != nil || m.Name != "my-feed" {
		t.Errorf("file mapping: %v, %v", m, err)
	}
}

// customMapping exercises what the built-in ones do not: records under a
// key, array paths, a numeric filter, seconds, a rewrite table and prefix.
const customMapping = `{
  "name": "custom",
  "records": "data",
  "filter": {"kind": "1"},
  "symbol": "inst.id",
  "symbolRewrite": {"map": {"XBT/USD": "BTC-USD"}, "upper": true, "replace": [["/", "-"]], "prefix": "K:"},
  "fields": {"bid": "q[0][0]", "bidSize": "q[0][1]", "ask": "q[1][0]", "last": "px", "time": "t", "status": "st"},
  "timeUnit": "s"
}`

func TestCustomMapping(t *testing.T) {
	m, err := ParseMapping([]byte(customMapping))
	if err != nil {
		t.Fatal(err)
	}
	mp := m.NewMapper()
	cases := []struct{ msg, want string }{
		{`{"data":{"kind":1,"inst":{"id":"XBT/USD"},"q":[["93000.5",1.25],[93001]],"px":93000.75,"t":1767225600.5,"st":"trading"}}`,
			"update BTC-USD bid=93000.5 bidSize=1.25 ask=93001 last=93000.75 time=2026-01-01T00:00:00.500000Z status=trading"},
		{`{"data":[{"kind":"1","inst":{"id":"eth/usd"},"px":"1e3"},{"kind":2},{"kind":"1","inst":{"id":"ada/usd"},"px":null}]}`,
			"update K:ETH-USD last=1000|reject field: none of the mapped fields in the record|ignored 1"},
		{`{"data":{"kind":1,"inst":{"id":"X"},"px":true}}`, `reject value: field "last": want a decimal string or number, got "true"`},
		{`{"data":{"kind":1,"inst":{"id":"X"},"px":1,"t":-1}}`, `reject value: field "time": time out of range: "-1"`},
		{`{"data":{"kind":1,"inst":{"id":"X"},"px":1,"t":"2026-01-01T00:00:00+01:00"}}`, "update K:X last=1 time=2025-12-31T23:00:00.000000Z"},
		{`{"data":{"kind":1,"inst":{"id":"X"},"px":1,"t":"1767225600"}}`, "update K:X last=1 time=2026-01-01T00:00:00.000000Z"},
		{`{"data":{"kind":1,"inst":{"id":"X"},"px":1,"st":"open"}}`, `reject value: field "status": want trading, halted or stale, got "open"`},
		{`{"data":{"kind":1,"inst":{"id":7},"px":1}}`, "reject symbol: no symbol (a JSON string) in the record"},
		{`{"data":{"kind":1,"inst":{"id":"` + strings.Repeat("A", 40) + `"},"px":1}}`, "reject symbol: bad symbol"},
		{`{"other":1}`, "ignored 1"},
		{`{"data":[]}`, "ignored 1"},
		{`{"data":"x"}`, "ignored 1"},
		{`{"data":{"kind":1`, "reject json: not JSON"},
		{``, "reject json: not JSON"},
	}
	for _, tc := range cases {
		got := strings.Join(outcomes(mp, []byte(tc.msg)), "|")
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s:\n got %s\nwant %s", tc.msg, got, tc.want)
		}
	}
}

// referenceMap maps msg as Mapper.Map does, but finds the values with
// encoding/json (UseNumber) instead of the path walk; the outcomes must be
// the same.
func referenceMap(m *Mapping, msg []byte) []string {
	if !json.Valid(msg) {
		return []string{"reject json"}
	}
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		panic(err)
	}
	recs, _ := lookup(v, m.recordsAt) // absent: nil, ignored below
	var out []string
	ignored := 0
	mp := m.NewMapper()
	one := func(rec any) {
		spans := make([][]byte, m.slots)
		for slot, steps := range m.paths {
			if val, ok := lookup(rec, steps); ok {
				spans[slot], _ = json.Marshal(val)
			}
		}
		switch skip, err := mp.record(spans); {
		case skip:
			ignored++
		case err != nil:
			out = append(out, "reject "+err.Reason)
		default:
			out = append(out, "update "+wire(mp.u))
		}
	}
	switch r := recs.(type) {
	case []any:
		for _, rec := range r {
			one(rec)
		}
		if len(r) == 0 {
			ignored++
		}
	case map[string]any:
		one(r)
	default:
		ignored++
	}
	if ignored > 0 {
		out = append(out, fmt.Sprintf("ignored %d", ignored))
	}
	return out
}

func lookup(v any, steps []pathStep) (any, bool) {
	for _, st := range steps {
		switch x := v.(type) {
		case map[string]any:
			if st.key == "" {
				return nil, false
			}
			if v = x[st.key]; v == nil {
				if _, present := x[st.key]; !present {
					return nil, false
				}
			}
		case []any:
			if st.key != "" || st.index >= len(x) {
				return nil, false
			}
			v = x[st.index]
		default:
			return nil, false
		}
	}
	return v, true
}

// brief is an outcome without its error text, as referenceMap gives it.
func brief(out []string) []string {
	for i, o := range out {
		if strings.HasPrefix(o, "reject ") {
			out[i], _, _ = strings.Cut(o, ":")
		}
	}
	return out
}

func TestMapperMatchesEncodingJSON(t *testing.T) {
	for _, name := range []string{"binance", "coinbase"} {
		m, _ := LoadMapping(name)
		for _, frame := range readFrames(t, "testdata/ws/"+name+".frames") {
			got, want := brief(outcomes(m.NewMapper(), frame)), referenceMap(m, frame)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s:\nwalk:          %q\nencoding/json: %q", frame, got, want)
			}
		}
	}
}

func BenchmarkMapping(b *testing.B) {
	for _, bc := range []struct{ name, mapping, frames string }{
		{"binance-ticker", "binance", "testdata/ws/binance.frames"},
		{"coinbase-ticker", "coinbase", "testdata/ws/coinbase.frames"},
	} {
		m, err := LoadMapping(bc.mapping)
		if err != nil {
			b.Fatal(err)
		}
		frames := readFrames(b, bc.frames)
		msg := frames[1] // a full ticker
		b.Run(bc.name, func(b *testing.B) {
			mp := m.NewMapper()
			n := 0
			emit := func(*Update) { n++ }
			reject := func(err error) { b.Fatal(err) }
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for range b.N {
				mp.Map(msg, emit, reject)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "updates/s")
		})
	}
	// !ticker@arr: 100 tickers in one frame.
	m, _ := LoadMapping("binance")
	one := readFrames(b, "testdata/ws/binance.frames")[1]
	arr := []byte("[" + strings.TrimSuffix(strings.Repeat(string(one)+",", 100), ",") + "]")
	b.Run("binance-arr-100", func(b *testing.B) {
		mp := m.NewMapper()
		n := 0
		b.ReportAllocs()
		b.SetBytes(int64(len(arr)))
		for range b.N {
			mp.Map(arr, func(*Update) { n++ }, func(err error) { b.Fatal(err) })
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "updates/s")
	})
}
