package feed

import (
	"bytes"
	"cmp"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// A Mapping turns the JSON messages of an upstream feed (a crypto
// exchange's WebSocket ticker, say) into updates. It is read from a JSON
// config:
//
//	{
//	  "name": "binance",
//	  "records": "",                      // path of the record, or of an array of records; "" = the message
//	  "filter": {"e": "24hrTicker"},      // records must hold these values at these paths; others are ignored
//	  "symbol": "s",                      // path of the symbol (a JSON string)
//	  "symbolRewrite": {"upper": true, "quoteSuffixes": ["USDT", "BTC"], "separator": "-"},
//	  "fields": {"bid": "b", "bidSize": "B", "last": "c", "time": "E"},
//	  "timeUnit": "ms"                    // of numeric times: s, ms (default), us or ns
//	}
//
// Paths are keys joined by dots with array indexes in brackets ("data.b",
// "data[0].c"). Values may be JSON strings or numbers; either way they are
// read as decimals, never through float64. A null or absent value leaves
// its field out; a record with no field at all is rejected. A Mapping is
// immutable and safe for concurrent use; each goroutine maps with its own
// Mapper.
type Mapping struct {
	Name        string
	Description string

	records    *pathNode    // slot 0: the records
	recordsAt  []pathStep   // the path of the records
	recordRoot bool         // records is the message itself
	record     *pathNode    // the paths of a record, by slot
	paths      [][]pathStep // the paths of a record, by slot
	slots      int
	filters    []mapFilter
	symbol     int            // slot
	fields     [NumFields]int // slot of each mapped field
	set        FieldSet       // the mapped fields
	timeShift  int32          // decimal places from the time unit to microseconds
	rewrite    symbolRewrite
}

type mapFilter struct {
	slot int
	want string
}

// mappingConfig is the JSON form of a Mapping.
type mappingConfig struct {
	Name          string            `json:"name"`
	Description   string            `json:"description"`
	Records       string            `json:"records"`
	Filter        map[string]string `json:"filter"`
	Symbol        *string           `json:"symbol"`
	SymbolRewrite *rewriteConfig    `json:"symbolRewrite"`
	Fields        map[string]string `json:"fields"`
	TimeUnit      string            `json:"timeUnit"`
}

// rewriteConfig is the JSON form of a symbol rewrite. Its steps apply in
// this order: map (a hit is final), upper, replace, quoteSuffixes, prefix.
type rewriteConfig struct {
	Map           map[string]string `json:"map"`           // exact upstream symbol → symbol
	Upper         bool              `json:"upper"`         // upper-case
	Replace       [][]string        `json:"replace"`       // [from, to] pairs, in order
	QuoteSuffixes []string          `json:"quoteSuffixes"` // BTCUSDT → BTC + separator + USDT, longest suffix first
	Separator     string            `json:"separator"`
	Prefix        string            `json:"prefix"`
}

// Limits of a mapping config.
const (
	maxMappingSize   = 1 << 20
	maxMappingPaths  = 64 // filters plus fields plus the symbol
	maxRewriteString = 32 // map values, replacements, suffixes, prefix
	maxRawSymbol     = 256
)

var timeShifts = map[string]int32{"s": 6, "ms": 3, "us": 0, "ns": -3}

// ParseMapping parses and checks a mapping config. Its errors name the
// key at fault.
func ParseMapping(data []byte) (*Mapping, error) {
	if len(data) > maxMappingSize {
		return nil, fmt.Errorf("mapping: config over %d bytes", maxMappingSize)
	}
	var c mappingConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("mapping: data after the config object")
	}
	m := &Mapping{Name: c.Name, Description: c.Description}
	if len(c.Filter)+len(c.Fields)+1 > maxMappingPaths {
		return nil, fmt.Errorf("mapping: more than %d paths", maxMappingPaths)
	}
	steps, err := parsePath(c.Records)
	if err != nil {
		return nil, fmt.Errorf("mapping: records: %w", err)
	}
	m.recordsAt, m.recordRoot = steps, len(steps) == 0
	m.records = &pathNode{}
	m.records.add(steps, 0)

	m.record = &pathNode{}
	addPath := func(what, p string) (int, error) {
		steps, err := parsePath(p)
		if err != nil {
			return 0, fmt.Errorf("mapping: %s: %w", what, err)
		}
		m.record.add(steps, m.slots)
		m.paths = append(m.paths, steps)
		m.slots++
		return m.slots - 1, nil
	}
	if c.Symbol == nil || *c.Symbol == "" {
		return nil, errors.New(`mapping: "symbol": want the path of the symbol`)
	}
	if m.symbol, err = addPath("symbol", *c.Symbol); err != nil {
		return nil, err
	}
	for _, p := range sortedKeys(c.Filter) {
		slot, err := addPath("filter."+p, p)
		if err != nil {
			return nil, err
		}
		m.filters = append(m.filters, mapFilter{slot: slot, want: c.Filter[p]})
	}
	if len(c.Fields) == 0 {
		return nil, errors.New(`mapping: "fields": map at least one field to a path`)
	}
	for _, name := range sortedKeys(c.Fields) {
		f, ok := ParseField(name)
		if !ok {
			return nil, fmt.Errorf("mapping: fields.%s: unknown field (want %s)", name, strings.Join(fieldNames[:], " "))
		}
		if m.fields[f], err = addPath("fields."+name, c.Fields[name]); err != nil {
			return nil, err
		}
		m.set = m.set.With(f)
	}
	unit := cmp.Or(c.TimeUnit, "ms")
	shift, ok := timeShifts[unit]
	if !ok {
		return nil, fmt.Errorf("mapping: timeUnit %q: want s, ms, us or ns", c.TimeUnit)
	}
	m.timeShift = shift
	if c.SymbolRewrite != nil {
		if m.rewrite, err = newSymbolRewrite(c.SymbolRewrite); err != nil {
			return nil, fmt.Errorf("mapping: symbolRewrite: %w", err)
		}
	}
	return m, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

//go:embed mappings/*.json
var builtinMappings embed.FS

// MappingNames returns the names of the built-in mappings.
func MappingNames() []string {
	entries, _ := builtinMappings.ReadDir("mappings")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	return names
}

// LoadMapping returns the built-in mapping called nameOrPath (a name has
// no slash and does not end in .json), or the one in the file at that path.
func LoadMapping(nameOrPath string) (*Mapping, error) {
	var data []byte
	var err error
	if !strings.ContainsRune(nameOrPath, '/') && !strings.HasSuffix(nameOrPath, ".json") {
		data, err = builtinMappings.ReadFile("mappings/" + nameOrPath + ".json")
		if err != nil {
			return nil, fmt.Errorf("mapping %q: no such built-in mapping (have %s; a file path needs a / or .json)",
				nameOrPath, strings.Join(MappingNames(), ", "))
		}
	} else {
		f, err := os.Open(nameOrPath)
		if err != nil {
			return nil, fmt.Errorf("mapping: %w", err)
		}
		defer f.Close()
		if data, err = io.ReadAll(io.LimitReader(f, maxMappingSize+1)); err != nil {
			return nil, fmt.Errorf("mapping: %w", err)
		}
	}
	m, err := ParseMapping(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", nameOrPath, err)
	}
	if m.Name == "" {
		m.Name = strings.TrimSuffix(path.Base(nameOrPath), ".json")
	}
	return m, nil
}

// symbolRewrite is a compiled rewriteConfig.
type symbolRewrite struct {
	table    map[string]string
	upper    bool
	replace  [][2]string
	suffixes []string // longest first
	sep      string
	prefix   string
}

func newSymbolRewrite(c *rewriteConfig) (symbolRewrite, error) {
	r := symbolRewrite{table: c.Map, upper: c.Upper, sep: c.Separator, prefix: c.Prefix}
	for k, v := range c.Map {
		if k == "" || !ValidSymbol(v) {
			return r, fmt.Errorf("map: %q → %q: want a non-empty upstream symbol and a valid symbol", k, v)
		}
	}
	for _, p := range c.Replace {
		if len(p) != 2 || p[0] == "" || len(p[0]) > maxRewriteString || len(p[1]) > maxRewriteString {
			return r, fmt.Errorf("replace: %q: want [from, to] with a non-empty from, each at most %d bytes", p, maxRewriteString)
		}
		r.replace = append(r.replace, [2]string{p[0], p[1]})
	}
	for _, q := range c.QuoteSuffixes {
		if q == "" || len(q) > maxRewriteString {
			return r, fmt.Errorf("quoteSuffixes: %q: want 1 to %d bytes", q, maxRewriteString)
		}
	}
	if len(c.QuoteSuffixes) > 0 && (c.Separator == "" || strings.Trim(c.Separator, "._:-") != "" || len(c.Separator) > 4) {
		return r, fmt.Errorf("separator %q: quoteSuffixes need one of . _ : - (at most 4)", c.Separator)
	}
	r.suffixes = slices.Clone(c.QuoteSuffixes)
	slices.SortStableFunc(r.suffixes, func(a, b string) int { return len(b) - len(a) })
	if c.Prefix != "" && (len(c.Prefix) > maxRewriteString || !ValidSymbol(c.Prefix)) {
		return r, fmt.Errorf("prefix %q: want the start of a valid symbol", c.Prefix)
	}
	return r, nil
}

// apply rewrites an upstream symbol; the caller checks the result.
func (r *symbolRewrite) apply(s string) string {
	if v, ok := r.table[s]; ok {
		return v
	}
	if r.upper {
		s = strings.ToUpper(s)
	}
	for _, p := range r.replace {
		s = strings.ReplaceAll(s, p[0], p[1])
	}
	for _, q := range r.suffixes {
		if base, ok := strings.CutSuffix(s, q); ok && base != "" {
			if !strings.HasSuffix(base, r.sep) {
				s = base + r.sep + q
			}
			break
		}
	}
	return r.prefix + s
}

// maxSymbolCache bounds a Mapper's cache of rewritten symbols.
const maxSymbolCache = 10_000

// A Mapper maps messages with one Mapping. It reuses its buffers, so it is
// for one goroutine at a time.
type Mapper struct {
	m       *Mapping
	recs    [][]byte // the records' span
	spans   [][]byte // a record's values, by slot
	u       Update
	symbols map[string]string // upstream symbol → valid rewritten symbol
}

// NewMapper returns a Mapper for m.
func (m *Mapping) NewMapper() *Mapper {
	return &Mapper{m: m, recs: make([][]byte, 1), spans: make([][]byte, m.slots), symbols: map[string]string{}}
}

// Map maps one message. For each record it calls emit with its update
// (which Map reuses after emit returns) or reject with an *Error; it
// returns how many records the filter passed over, counting as one a
// message without records (no value at the records path, or an empty
// array). A message that is not JSON is rejected whole.
func (mp *Mapper) Map(msg []byte, emit func(*Update), reject func(error)) (ignored int) {
	if !json.Valid(msg) {
		var raw json.RawMessage
		reject(errorf(ReasonJSON, "", "not JSON: %s", jsonProblem(json.Unmarshal(msg, &raw))))
		return 0
	}
	recs := msg[skipSpace(msg, 0):]
	if !mp.m.recordRoot {
		mp.recs[0] = nil
		mp.m.records.walk(msg, 0, mp.recs)
		if recs = mp.recs[0]; recs == nil {
			return 1
		}
	}
	one := func(at int) {
		clear(mp.spans)
		mp.m.record.walk(recs, at, mp.spans)
		switch skip, err := mp.record(mp.spans); {
		case skip:
			ignored++
		case err != nil:
			reject(err)
		default:
			emit(&mp.u)
		}
	}
	switch recs[0] {
	case '[':
		n := 0
		elements(recs, 0, func(at int) { n++; one(at) })
		if n == 0 {
			ignored++
		}
	case '{':
		one(0)
	default:
		ignored++
	}
	return ignored
}

// record fills mp.u from the values of one record, by slot. skip is true
// when the filter passes the record over.
func (mp *Mapper) record(spans [][]byte) (skip bool, _ *Error) {
	m := mp.m
	for _, f := range m.filters {
		if !filterMatch(spans[f.slot], f.want) {
			return true, nil
		}
	}
	mp.u.Reset()
	sym, err := mp.symbol(spans[m.symbol])
	if err != nil {
		return false, err
	}
	mp.u.Symbol = sym
	for f, rest, ok := m.set.Next(); ok; f, rest, ok = rest.Next() {
		raw := spans[m.fields[f]]
		if raw == nil || string(raw) == "null" {
			continue
		}
		var v Value
		var err error
		if f == Time {
			v, err = m.timeValue(raw)
		} else {
			v, err = ParseValue(f, raw)
		}
		if err != nil {
			var fe *Error
			if errors.As(err, &fe) {
				return false, fe
			}
			return false, errorf(ReasonValue, f.String(), "%v", err)
		}
		mp.u.Put(f, v)
	}
	if mp.u.Set == 0 {
		return false, errorf(ReasonField, "", "none of the mapped fields in the record")
	}
	return false, nil
}

// filterMatch reports whether a value (a JSON token) is want: a string
// equal to it, or another literal whose text is it.
func filterMatch(raw []byte, want string) bool {
	if len(raw) == 0 {
		return false
	}
	if raw[0] == '"' {
		s, ok := jsonString(raw)
		return ok && s == want
	}
	return string(raw) == want
}

// symbol returns the valid symbol of an upstream symbol token.
func (mp *Mapper) symbol(raw []byte) (string, *Error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", errorf(ReasonSymbol, "", "no symbol (a JSON string) in the record")
	}
	if len(raw) > maxRawSymbol {
		return "", errorf(ReasonSymbol, "", "upstream symbol over %d bytes", maxRawSymbol)
	}
	if s, ok := mp.symbols[string(raw)]; ok {
		return s, nil
	}
	up, ok := jsonString(raw)
	if !ok {
		return "", errorf(ReasonSymbol, "", "malformed symbol string")
	}
	s := mp.m.rewrite.apply(up)
	if !ValidSymbol(s) {
		if s != up {
			return "", errorf(ReasonSymbol, "", "bad symbol %s (from %s): want [A-Z0-9][A-Z0-9._:-]{0,31}", quoteShort(s), quoteShort(up))
		}
		return "", errorf(ReasonSymbol, "", "bad symbol %s: want [A-Z0-9][A-Z0-9._:-]{0,31}", quoteShort(s))
	}
	if len(mp.symbols) < maxSymbolCache {
		mp.symbols[string(raw)] = s
	}
	return s, nil
}

// timeValue reads a time: an RFC 3339 string, or a number (or a string of
// digits) of the mapping's time unit since the Unix epoch.
func (m *Mapping) timeValue(raw []byte) (Value, error) {
	text := string(raw)
	if raw[0] == '"' {
		s, ok := jsonString(raw)
		if !ok || s == "" || strings.Trim(s, "0123456789.") != "" {
			return ParseValue(Time, raw)
		}
		text = s
	} else if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return Value{}, errorf(ReasonValue, "time", "want an RFC 3339 string or a number, got %s", quoteShort(text))
	}
	d, err := ParseDecimal(text)
	if err != nil {
		return Value{}, errorf(ReasonValue, "time", "%v", err)
	}
	us := d.Shift(m.timeShift)
	if us.Sign() < 0 || us.GreaterThan(decimal.NewFromInt(maxIngestMicros)) {
		return Value{}, errorf(ReasonValue, "time", "time out of range: %s", quoteShort(text))
	}
	return TimeValue(time.UnixMicro(us.IntPart())), nil
}
