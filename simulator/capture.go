package simulator

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"

	"tickerd/feed"
)

// MaxCaptureLine is the longest capture line CaptureReader accepts, in
// bytes, without its newline.
const MaxCaptureLine = 1 << 20

// maxCaptureWindow bounds the zstd window a capture may ask for, so a hostile
// file cannot make the reader allocate gigabytes. zstd's --long mode uses
// 128 MiB.
const maxCaptureWindow = 128 << 20

// Errors of captures.
var (
	ErrNoTS     = errors.New("simulator: update has no ts")
	ErrNoFields = errors.New("simulator: update has no fields")
	ErrClosed   = errors.New("simulator: capture closed")
)

// CaptureError is a capture line that could not be read. Line is 1-based
// and counts blank lines; Err says what is wrong with it.
type CaptureError struct {
	Line int
	Err  error
}

func (e *CaptureError) Error() string { return fmt.Sprintf("capture line %d: %v", e.Line, e.Err) }
func (e *CaptureError) Unwrap() error { return e.Err }

// Frame limits of CaptureWriter: a frame ends once it spans FrameSpan of
// recorded time or holds FrameBytes of NDJSON, whichever comes first.
const (
	FrameSpan  = time.Second
	FrameBytes = 1 << 20
)

// CaptureWriter writes updates as a capture: zstd-compressed NDJSON, one
// {"symbol":..,"fields":{..},"ts":..} per line, values as JSON strings of
// their canonical text. The compressed stream is a sequence of independent
// zstd frames, each ending once it spans FrameSpan of recorded time (by
// the highest ts so far) or holds FrameBytes of NDJSON, so that a reader
// can start at any frame; a plain zstd decoder reads the frames one after
// the other as one stream. With an index writer, each finished frame gets a
// line in the capture's index (see ReadIndex). It is not safe for
// concurrent use.
type CaptureWriter struct {
	enc     *zstd.Encoder
	out     countingWriter // the capture
	index   io.Writer      // nil: no index
	files   []io.Closer    // closed by Close when the writer owns them
	durable bool           // Close syncs the files to disk before closing them
	buf     []byte         // the line being written
	ibuf    []byte         // the index line being written
	closed  bool
	written int64 // updates written
	high    int64 // highest ts written

	inFrame bool       // a frame is under way
	frame   IndexEntry // the frame under way: Offset, Updates, First, Last, High
	fhigh0  int64      // high when the frame began
	fbytes  int        // NDJSON bytes in the frame
}

// NewCaptureWriter returns a writer of a capture to w, without an index.
// Close flushes it; w stays open.
func NewCaptureWriter(w io.Writer) (*CaptureWriter, error) {
	return NewIndexedCaptureWriter(w, nil)
}

// NewIndexedCaptureWriter returns a writer of a capture to w that writes
// its index to index (nil: none). Close flushes them; both stay open.
func NewIndexedCaptureWriter(w, index io.Writer) (*CaptureWriter, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("simulator: zstd writer: %w", err)
	}
	cw := &CaptureWriter{enc: enc, out: countingWriter{w: w}, index: index, buf: make([]byte, 0, 512)}
	if index != nil {
		if _, err := io.WriteString(index, indexHeader); err != nil {
			return nil, fmt.Errorf("simulator: write capture index: %w", err)
		}
	}
	return cw, nil
}

// CreateCapture creates (or truncates) the file at path and its index
// path+".idx", and returns a writer of a capture to them; Close also closes
// the files.
func CreateCapture(path string) (*CaptureWriter, error) {
	return createCapture(path, os.O_TRUNC)
}

// createCapture creates the capture at path and its index with extra
// os.OpenFile flags (os.O_TRUNC, or os.O_EXCL to refuse an existing file).
func createCapture(path string, flag int) (*CaptureWriter, error) {
	flag |= os.O_WRONLY | os.O_CREATE
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, fmt.Errorf("simulator: create capture: %w", err)
	}
	idx, err := os.OpenFile(IndexPath(path), flag, 0o644)
	if err != nil {
		f.Close()
		if flag&os.O_EXCL != 0 {
			os.Remove(path) // ours: it did not exist
		}
		return nil, fmt.Errorf("simulator: create capture index: %w", err)
	}
	w, err := NewIndexedCaptureWriter(f, idx)
	if err != nil {
		f.Close()
		idx.Close()
		return nil, err
	}
	w.files = []io.Closer{f, idx}
	return w, nil
}

// IndexPath returns the path of the index of the capture at path.
func IndexPath(path string) string { return path + ".idx" }

// Write appends u as one line. u.TS must be set and u.Set non-empty, and
// every value in u.Set non-zero; Write does not keep u.
func (w *CaptureWriter) Write(u *feed.Update) error {
	if w.closed {
		return ErrClosed
	}
	if u.TS <= 0 {
		return fmt.Errorf("%w (symbol %q)", ErrNoTS, u.Symbol)
	}
	b, err := appendLine(w.buf[:0], u, true)
	if err != nil {
		return err
	}
	w.buf = b
	high := max(w.high, u.TS)
	if w.inFrame && (high-w.fhigh0 >= FrameSpan.Microseconds() || w.fbytes+len(b) > FrameBytes) {
		if err := w.endFrame(); err != nil {
			return err
		}
	}
	if !w.inFrame {
		w.enc.Reset(&w.out)
		w.inFrame = true
		w.frame = IndexEntry{Offset: w.out.n, First: u.TS}
		w.fhigh0, w.fbytes = high, 0
	}
	if _, err := w.enc.Write(b); err != nil {
		return fmt.Errorf("simulator: write capture: %w", err)
	}
	w.high = high
	w.written++
	w.fbytes += len(b)
	w.frame.Updates++
	w.frame.Last, w.frame.High = u.TS, high
	return nil
}

// endFrame ends the frame under way and indexes it.
func (w *CaptureWriter) endFrame() error {
	w.inFrame = false
	if err := w.enc.Close(); err != nil {
		return fmt.Errorf("simulator: write capture: %w", err)
	}
	if w.out.err != nil {
		return fmt.Errorf("simulator: write capture: %w", w.out.err)
	}
	w.frame.Size = w.out.n - w.frame.Offset
	if w.index != nil {
		w.ibuf = w.frame.appendText(w.ibuf[:0])
		if _, err := w.index.Write(w.ibuf); err != nil {
			return fmt.Errorf("simulator: write capture index: %w", err)
		}
	}
	return nil
}

// Updates returns the number of updates written.
func (w *CaptureWriter) Updates() int64 { return w.written }

// Flush compresses what was written so far and hands it to the underlying
// writer, so a reader sees complete lines. The frame under way goes on.
func (w *CaptureWriter) Flush() error {
	if w.closed {
		return ErrClosed
	}
	if !w.inFrame {
		return nil
	}
	if err := w.enc.Flush(); err != nil {
		return fmt.Errorf("simulator: flush capture: %w", err)
	}
	return nil
}

// Close ends the last frame (and closes the files CreateCapture opened).
// It is safe to call twice.
func (w *CaptureWriter) Close() error {
	if w.closed {
		return nil
	}
	var err error
	if w.inFrame {
		err = w.endFrame()
	}
	w.closed = true
	for _, f := range w.files {
		if s, ok := f.(interface{ Sync() error }); ok && w.durable && err == nil {
			if serr := s.Sync(); serr != nil {
				err = fmt.Errorf("simulator: sync capture: %w", serr)
			}
		}
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("simulator: close capture: %w", cerr)
		}
	}
	return err
}

// countingWriter counts the bytes written through it and keeps the first
// error.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// appendLine appends u as one NDJSON line, {"symbol":..,"fields":{..}},
// then "ts" when withTS, and a newline. It rejects an update that no reader
// would accept back: one without fields or with a zero value.
func appendLine(b []byte, u *feed.Update, withTS bool) ([]byte, error) {
	if u.Set == 0 {
		return b, fmt.Errorf("%w (symbol %q)", ErrNoFields, u.Symbol)
	}
	b = append(b, `{"symbol":`...)
	b = appendJSONString(b, u.Symbol)
	b = append(b, `,"fields":{`...)
	for f, rest, ok := u.Set.Next(); ok; f, rest, ok = rest.Next() {
		v := u.Values[f]
		if v.IsZero() {
			return b, fmt.Errorf("simulator: update of %q: field %s has no value", u.Symbol, f)
		}
		if b[len(b)-1] != '{' {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, f.String()...)
		b = append(b, `":`...)
		b = appendJSONString(b, v.String())
	}
	b = append(b, '}')
	if withTS {
		b = append(b, `,"ts":`...)
		b = strconv.AppendInt(b, u.TS, 10)
	}
	return append(b, "}\n"...), nil
}

// appendJSONString appends s as a JSON string. Canonical feed values need
// no escaping; anything else is escaped correctly, invalid UTF-8 replaced.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			b = append(b, `\u00`...)
			b = append(b, hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// CaptureReader reads the updates of a capture in order. It is not safe for
// concurrent use.
type CaptureReader struct {
	dec  *zstd.Decoder
	sc   *bufio.Scanner
	file io.Closer // closed by Close when the reader owns it
	line int
	err  error // sticky: once Next fails it keeps failing

	from   int64       // updates with ts before from are passed over until one is not (0: none)
	seek   SeekStats   // how OpenCaptureAt got here
	peeked bool        // peek holds the next update, read ahead
	peek   feed.Update //
}

// NewCaptureReader returns a reader of the capture in r. Close releases it;
// r stays open.
func NewCaptureReader(r io.Reader) (*CaptureReader, error) {
	dec, err := zstd.NewReader(r,
		zstd.WithDecoderConcurrency(1), // decode in the caller's goroutine
		zstd.WithDecoderMaxWindow(maxCaptureWindow),
		zstd.WithDecoderMaxMemory(maxCaptureWindow))
	if err != nil {
		return nil, fmt.Errorf("simulator: zstd reader: %w", err)
	}
	sc := bufio.NewScanner(dec)
	sc.Buffer(make([]byte, 0, 64<<10), MaxCaptureLine+1)
	return &CaptureReader{dec: dec, sc: sc}, nil
}

// OpenCapture opens the capture file at path; Close also closes the file.
func OpenCapture(path string) (*CaptureReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("simulator: open capture: %w", err)
	}
	r, err := NewCaptureReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.file = f
	return r, nil
}

// Next reads the next update into u (resetting it first). It returns io.EOF
// after the last one, and a *CaptureError for a line that is not a valid
// update with a positive ts, longer than MaxCaptureLine, or not readable
// (corrupt or truncated compression). Blank lines are skipped. After an
// error other than a bad line's, every later call returns the same error.
func (r *CaptureReader) Next(u *feed.Update) error {
	for {
		if r.peeked {
			r.peeked = false
			*u = r.peek
		} else if err := r.next(u); err != nil {
			return err
		}
		if r.from <= 0 {
			return nil
		}
		if u.TS >= r.from {
			r.from = 0
			return nil
		}
		r.seek.Skipped++
	}
}

// next reads the next line into u.
func (r *CaptureReader) next(u *feed.Update) error {
	if r.err != nil {
		return r.err
	}
	for r.sc.Scan() {
		r.line++
		b := r.sc.Bytes()
		if len(b) > 0 && b[len(b)-1] == '\r' {
			b = b[:len(b)-1]
		}
		if isBlank(b) {
			continue
		}
		if err := feed.ParseLine(b, u); err != nil {
			return &CaptureError{Line: r.line, Err: err}
		}
		if u.TS <= 0 {
			return &CaptureError{Line: r.line, Err: errors.New(`missing or zero "ts"`)}
		}
		return nil
	}
	switch err := r.sc.Err(); {
	case err == nil:
		r.err = io.EOF
	case errors.Is(err, bufio.ErrTooLong):
		r.err = &CaptureError{Line: r.line + 1, Err: fmt.Errorf("longer than %d bytes", MaxCaptureLine)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		r.err = &CaptureError{Line: r.line + 1, Err: fmt.Errorf("truncated capture: %w", err)}
	default:
		r.err = &CaptureError{Line: r.line + 1, Err: fmt.Errorf("unreadable capture: %w", err)}
	}
	return r.err
}

// peekMatches reads the next update ahead and reports whether its ts is
// ts (false also when it cannot be read).
func (r *CaptureReader) peekMatches(ts int64) bool {
	if r.next(&r.peek) != nil {
		return false
	}
	r.peeked = true
	return r.peek.TS == ts
}

// SeekStats says how OpenCaptureAt positioned the reader; Skipped grows
// until the first update is read.
func (r *CaptureReader) SeekStats() SeekStats { return r.seek }

// Line returns the number of the line Next read last (1-based).
func (r *CaptureReader) Line() int { return r.line }

// Close releases the decoder (and closes the file OpenCapture opened). It
// is safe to call twice.
func (r *CaptureReader) Close() error {
	if r.dec == nil {
		return nil
	}
	r.dec.Close()
	r.dec = nil
	if r.err == nil {
		r.err = ErrClosed
	}
	if r.file != nil {
		if err := r.file.Close(); err != nil {
			return fmt.Errorf("simulator: close capture: %w", err)
		}
	}
	return nil
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}
