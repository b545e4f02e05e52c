package feed

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ReasonCSV is the rejection reason of a CSV row that encoding/csv cannot
// read (a stray quote), that has the wrong number of columns, or that is
// longer than the record limit.
const ReasonCSV = "csv"

// Defaults of CSVAdapter.
const (
	DefaultMaxCSVRecord  = 64 << 10
	DefaultMaxCSVColumns = 256
	DefaultMaxCSVErrors  = 100
)

// CSVMapping says which column of a CSV file holds what, by the names in
// its header row (compared case-insensitively, surrounding spaces ignored).
// The zero value is the default mapping: the column headed "symbol", every
// column headed with a level-1 field name, and "ts" when there is one. A
// column the mapping does not account for is an error, unless Ignore names
// it.
type CSVMapping struct {
	// Symbol is the header of the symbol column; "" means "symbol".
	Symbol string
	// TS is the header of the ingest-time column; "" means "ts" if the file
	// has such a column, else none (the time of applying).
	TS string
	// Fields maps a field to the header of its column, for columns not
	// headed with the field's name. A column headed with a field's name that
	// Fields maps elsewhere is not that field's.
	Fields map[Field]string
	// Ignore lists the headers of columns to skip; "*" skips every column
	// the mapping does not name.
	Ignore []string
}

// ParseCSVMapping parses a mapping in URL query form, as -feed csv:PATH?...
// takes it: symbol=COL, ts=COL, FIELD=COL for a level-1 field, and
// ignore=COL,COL (or ignore=*). Headers are unescaped as query values are.
func ParseCSVMapping(query string) (CSVMapping, error) {
	var m CSVMapping
	params, err := url.ParseQuery(query)
	if err != nil {
		return m, fmt.Errorf("csv mapping %q: %w", query, err)
	}
	used := map[string]string{} // lower-case header → key that maps it
	for k, vs := range params {
		if len(vs) != 1 {
			return m, fmt.Errorf("csv mapping: %s given %d times", k, len(vs))
		}
		v := strings.TrimSpace(vs[0])
		if v == "" {
			return m, fmt.Errorf("csv mapping: %s= needs a column header", k)
		}
		if k == "ignore" {
			for _, h := range strings.Split(v, ",") {
				if h = strings.TrimSpace(h); h != "" {
					m.Ignore = append(m.Ignore, h)
				}
			}
			continue
		}
		if prev, ok := used[strings.ToLower(v)]; ok {
			return m, fmt.Errorf("csv mapping: column %q mapped twice (%s and %s)", v, prev, k)
		}
		used[strings.ToLower(v)] = k
		switch k {
		case "symbol":
			m.Symbol = v
		case "ts":
			m.TS = v
		default:
			f, ok := fieldByName(k)
			if !ok {
				return m, fmt.Errorf("csv mapping: unknown key %q (want symbol, ts, ignore or a field: %s)", k, strings.Join(fieldNames[:], " "))
			}
			if m.Fields == nil {
				m.Fields = map[Field]string{}
			}
			m.Fields[f] = v
		}
	}
	return m, nil
}

// fieldByName is ParseField, ignoring case.
func fieldByName(name string) (Field, bool) {
	for i, n := range fieldNames {
		if strings.EqualFold(n, name) {
			return Field(i), true
		}
	}
	return 0, false
}

// CSVAdapter loads a CSV file of quotes and trades: a header row, then one
// update per row. Empty cells leave their field out of the row's update; a
// row needs a symbol and at least one field value. Each bad row is rejected
// alone, counted by reason and reported with its line; the others apply in
// file order.
//
// Memory is bounded whatever the file: a row (a quoted cell may span lines)
// longer than MaxRecord bytes is rejected without being held, and the
// header may have at most MaxColumns columns.
type CSVAdapter struct {
	Sink    Sink
	Counter Counter
	Mapping CSVMapping
	// MaxRecord is the longest row in bytes. Zero means DefaultMaxCSVRecord.
	MaxRecord int
	// MaxColumns is the most columns the header may have. Zero means
	// DefaultMaxCSVColumns.
	MaxColumns int
	// MaxErrors caps the row errors kept in CSVResult.Errors; the counts
	// stay exact. Zero means DefaultMaxCSVErrors.
	MaxErrors int
}

// CSVError is a rejected CSV row.
type CSVError struct {
	Line   int    // 1-based physical line where the row starts
	Column int    // 1-based column of the offending cell; 0 for the whole row
	Header string // header of Column
	Err    *Error // reason and message
}

func (e *CSVError) Error() string {
	if e.Column > 0 {
		return fmt.Sprintf("line %d, column %d (%s): %s", e.Line, e.Column, e.Header, e.Err.Msg)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Err.Msg)
}

// Unwrap returns the *Error, whose Reason the counters use.
func (e *CSVError) Unwrap() error { return e.Err }

// CSVResult sums up a load.
type CSVResult struct {
	Accepted int         // rows applied
	Rejected int         // rows rejected
	Errors   []*CSVError // the first MaxErrors rejections, in file order
}

// csvRole is what one column holds.
type csvRole struct {
	kind  uint8 // one of the role constants
	field Field // for roleField
}

const (
	roleIgnore uint8 = iota
	roleSymbol
	roleTS
	roleField
)

// CSVLoad is an opened CSV file whose header has been mapped; Run applies
// its rows. It is used by one goroutine.
type CSVLoad struct {
	a       *CSVAdapter
	lines   *csvLines
	r       *csv.Reader
	header  []string
	roles   []csvRole
	symbols map[string]string // interned symbols, so that a row's text is not kept
}

// Load opens r and applies every row: Open, then Run.
func (a *CSVAdapter) Load(ctx context.Context, r io.Reader) (CSVResult, error) {
	l, err := a.Open(r)
	if err != nil {
		return CSVResult{}, err
	}
	return l.Run(ctx)
}

// Open reads the header row of r and maps its columns. Its error says what
// is wrong with the header or the mapping; nothing has been applied then.
func (a *CSVAdapter) Open(r io.Reader) (*CSVLoad, error) {
	maxRec := a.MaxRecord
	if maxRec <= 0 {
		maxRec = DefaultMaxCSVRecord
	}
	maxCols := a.MaxColumns
	if maxCols <= 0 {
		maxCols = DefaultMaxCSVColumns
	}
	lines := &csvLines{r: bufio.NewReaderSize(r, max(maxRec, 16)), max: maxRec}
	cr := csv.NewReader(lines)
	cr.ReuseRecord = true
	lines.next()
	rec, err := cr.Read()
	switch {
	case err == io.EOF:
		return nil, errors.New("csv: empty file, no header row")
	case errors.Is(err, errRowTooLong):
		return nil, fmt.Errorf("csv: header row longer than %d bytes", maxRec)
	case err != nil:
		return nil, fmt.Errorf("csv: header row: %w", err)
	case len(rec) > maxCols:
		return nil, fmt.Errorf("csv: header has %d columns, at most %d allowed", len(rec), maxCols)
	}
	header := make([]string, len(rec))
	for i, h := range rec {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // a byte order mark, as spreadsheets write
		}
		header[i] = strings.TrimSpace(h)
	}
	roles, err := mapCSVHeader(header, a.Mapping)
	if err != nil {
		return nil, fmt.Errorf("csv: %w", err)
	}
	cr.FieldsPerRecord = len(header)
	return &CSVLoad{a: a, lines: lines, r: cr, header: header, roles: roles, symbols: map[string]string{}}, nil
}

// mapCSVHeader gives each column its role under m.
func mapCSVHeader(header []string, m CSVMapping) ([]csvRole, error) {
	col := map[string]int{} // lower-case header → column
	for i, h := range header {
		k := strings.ToLower(h)
		if j, dup := col[k]; dup {
			return nil, fmt.Errorf("columns %d and %d are both headed %q", j+1, i+1, h)
		}
		col[k] = i
	}
	roles := make([]csvRole, len(header))
	assigned := make([]bool, len(header))
	assign := func(name string, r csvRole, what string, required bool) error {
		i, ok := col[strings.ToLower(name)]
		if !ok {
			if required {
				return fmt.Errorf("no column headed %q for the %s (header: %s)", name, what, strings.Join(header, ","))
			}
			return nil
		}
		if assigned[i] {
			return fmt.Errorf("column %d (%s) mapped twice", i+1, header[i])
		}
		roles[i], assigned[i] = r, true
		return nil
	}
	sym := m.Symbol
	if sym == "" {
		sym = "symbol"
	}
	if err := assign(sym, csvRole{kind: roleSymbol}, "symbol", true); err != nil {
		return nil, err
	}
	ts, tsRequired := m.TS, m.TS != ""
	if ts == "" {
		ts = "ts"
	}
	if err := assign(ts, csvRole{kind: roleTS}, "ingest time", tsRequired); err != nil {
		return nil, err
	}
	for f := range NumFields {
		name, explicit := m.Fields[f]
		if !explicit {
			name = f.String()
			if i, ok := col[strings.ToLower(name)]; !ok || assigned[i] {
				continue
			}
		}
		if err := assign(name, csvRole{kind: roleField, field: f}, f.String()+" field", true); err != nil {
			return nil, err
		}
	}
	ignore, ignoreAll := map[string]bool{}, false
	for _, h := range m.Ignore {
		ignore[strings.ToLower(strings.TrimSpace(h))] = true
		ignoreAll = ignoreAll || h == "*"
	}
	fields := 0
	for i, h := range header {
		switch {
		case assigned[i]:
			if roles[i].kind == roleField {
				fields++
			}
		case ignoreAll || ignore[strings.ToLower(h)]:
			roles[i] = csvRole{kind: roleIgnore}
		default:
			return nil, fmt.Errorf("column %d (%q) is not symbol, ts or a field (%s); map it, or skip it with ignore=%s",
				i+1, h, strings.Join(fieldNames[:], " "), url.QueryEscape(h))
		}
	}
	if fields == 0 {
		return nil, fmt.Errorf("no field columns (header: %s)", strings.Join(header, ","))
	}
	return roles, nil
}

// maxInterned bounds CSVLoad.symbols; past it symbols are copied per row.
const maxInterned = 100_000

// Run applies the rows after the header until the end of the file or of
// ctx. Bad rows are counted and listed in the result; its error is for a
// failure to read the file or the end of ctx, with what was applied so far.
func (l *CSVLoad) Run(ctx context.Context) (CSVResult, error) {
	maxErrs := l.a.MaxErrors
	if maxErrs <= 0 {
		maxErrs = DefaultMaxCSVErrors
	}
	var res CSVResult
	reject := func(e *CSVError) {
		res.Rejected++
		l.a.Counter.Reject(e)
		if len(res.Errors) < maxErrs {
			res.Errors = append(res.Errors, e)
		}
	}
	// The accepted counter moves every 1024 rows, so a long load shows
	// progress in /metrics without a counter update per row.
	counted := 0
	flush := func() {
		l.a.Counter.Accept(res.Accepted - counted)
		counted = res.Accepted
	}
	defer flush()
	var u Update
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if flush(); ctx.Err() != nil {
				return res, ctx.Err()
			}
		}
		l.lines.next()
		rec, err := l.r.Read()
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			e := l.readError(err)
			if e == nil {
				return res, fmt.Errorf("csv: line %d: %w", l.lines.line, err)
			}
			reject(e)
			continue
		}
		if e := l.row(rec, l.lines.start, &u); e != nil {
			reject(e)
			continue
		}
		l.a.Sink.Apply(&u)
		res.Accepted++
	}
}

// readError turns an error of csv.Reader.Read into a rejected row, or nil
// when it is a failure to read the file.
func (l *CSVLoad) readError(err error) *CSVError {
	if errors.Is(err, errRowTooLong) {
		return &CSVError{Line: l.lines.start, Err: errorf(ReasonCSV, "", "row longer than %d bytes", l.lines.max)}
	}
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return nil
	}
	// encoding/csv counts the lines it was given; a skipped row is one to it.
	line := l.lines.start
	if errors.Is(pe.Err, csv.ErrFieldCount) {
		return &CSVError{Line: line, Err: errorf(ReasonCSV, "", "row has a different number of columns from the header (%d)", len(l.header))}
	}
	return &CSVError{Line: line, Err: errorf(ReasonCSV, "", "malformed CSV at line %d, byte %d: %v", line+pe.Line-pe.StartLine, pe.Column, pe.Err)}
}

// row fills u from one record.
func (l *CSVLoad) row(rec []string, line int, u *Update) *CSVError {
	u.Reset()
	bad := func(i int, err error) *CSVError {
		var fe *Error
		if !errors.As(err, &fe) {
			fe = errorf(ReasonValue, "", "%v", err)
		}
		return &CSVError{Line: line, Column: i + 1, Header: l.header[i], Err: fe}
	}
	for i, role := range l.roles {
		cell := strings.TrimSpace(rec[i])
		switch role.kind {
		case roleSymbol:
			if !ValidSymbol(cell) {
				return bad(i, errorf(ReasonSymbol, "", "bad symbol %s: want [A-Z0-9][A-Z0-9._:-]{0,31}", quoteShort(cell)))
			}
			u.Symbol = l.intern(cell)
		case roleTS:
			if cell == "" {
				continue
			}
			ts, err := ParseIngestTime(cell)
			if err != nil {
				return bad(i, errorf(ReasonValue, "ts", "%v", err))
			}
			u.TS = ts
		case roleField:
			if cell == "" {
				continue
			}
			v, err := ParseText(role.field, cell)
			if err != nil {
				return bad(i, err)
			}
			u.Put(role.field, v)
		}
	}
	if u.Set == 0 {
		return &CSVError{Line: line, Err: errorf(ReasonField, "", "no field values in the row")}
	}
	return nil
}

// intern returns a copy of s that does not keep the row's text alive.
func (l *CSVLoad) intern(s string) string {
	if c, ok := l.symbols[s]; ok {
		return c
	}
	c := strings.Clone(s)
	if len(l.symbols) < maxInterned {
		l.symbols[c] = c
	}
	return c
}

// maxIngestMicros is the end of year 9999, the last time RFC 3339 can write.
const maxIngestMicros = 253402300799_999999

// ParseIngestTime parses an ingest time as Unix microseconds: RFC 3339, or
// an integer of Unix milliseconds (below 10^14, which as microseconds would
// be before March 1973) or microseconds (from 10^14).
func ParseIngestTime(s string) (int64, error) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > maxIngestMicros {
			return 0, fmt.Errorf("want RFC 3339 or Unix milliseconds or microseconds, got %s", quoteShort(s))
		}
		if n < 1e14 {
			n *= 1000
		}
		return n, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("want RFC 3339 or Unix milliseconds or microseconds, got %s", quoteShort(s))
	}
	if us := t.UnixMicro(); us >= 0 {
		return us, nil
	}
	return 0, fmt.Errorf("time before 1970: %s", quoteShort(s))
}

// errRowTooLong is how csvLines stops a row over the record limit.
var errRowTooLong = errors.New("feed: csv row over the record limit")

// csvLines feeds encoding/csv one physical line per Read, so it never reads
// ahead of the row it parses; it numbers lines and bounds rows. A line that
// would take the current row over max bytes fails the Read with
// errRowTooLong, which ends the row there (encoding/csv returns the error
// as is), and the rest of the row is skipped unread: to the end of that
// line, then on while a quoted cell is open (an odd number of quotes since
// the row began, RFC 4180's rule). next marks the start of a row.
type csvLines struct {
	r       *bufio.Reader // buffer of max bytes: a longer line is too long
	max     int
	pending []byte // rest of the current line, not yet given out
	used    int    // bytes of the current row given out
	quotes  int    // quote characters in the current row
	started bool   // a non-blank line of the current row was given out
	line    int    // physical lines read
	start   int    // line where the current row started
	err     error  // io.EOF or a read error, returned once the data before it is out
}

// next starts a new row.
func (c *csvLines) next() { c.used, c.quotes, c.started = 0, 0, false }

func (c *csvLines) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		line, err := c.r.ReadSlice('\n')
		long := errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !long {
			c.err = err
		}
		if len(line) == 0 {
			return 0, c.err
		}
		c.line++
		// encoding/csv skips blank lines before a row; they cost nothing.
		blank := (len(line) == 1 && line[0] == '\n') || (len(line) == 2 && line[0] == '\r' && line[1] == '\n')
		if !blank || c.started {
			if !c.started {
				c.started, c.start = true, c.line
			}
			c.used += len(line)
			c.quotes += bytes.Count(line, quote)
			if long || c.used > c.max {
				c.skipRow(long)
				return 0, errRowTooLong
			}
		}
		c.pending = line
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

var quote = []byte{'"'}

// skipRow reads past the rest of a row over the limit without keeping it:
// the rest of the current line if midLine, then whole lines while a quoted
// cell is open.
func (c *csvLines) skipRow(midLine bool) {
	for midLine || c.quotes%2 == 1 {
		line, err := c.r.ReadSlice('\n')
		if !midLine && len(line) > 0 {
			c.line++
		}
		c.quotes += bytes.Count(line, quote)
		midLine = errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !midLine {
			c.err = err
			return
		}
	}
}
