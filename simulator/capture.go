package simulator

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
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

// CaptureWriter writes updates as a capture: zstd-compressed NDJSON, one
// {"symbol":..,"fields":{..},"ts":..} per line, values as JSON strings of
// their canonical text. It is not safe for concurrent use.
type CaptureWriter struct {
	enc    *zstd.Encoder
	file   io.Closer // closed by Close when the writer owns it
	buf    []byte
	closed bool
}

// NewCaptureWriter returns a writer of a capture to w. Close flushes it; w
// stays open.
func NewCaptureWriter(w io.Writer) (*CaptureWriter, error) {
	enc, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("simulator: zstd writer: %w", err)
	}
	return &CaptureWriter{enc: enc, buf: make([]byte, 0, 512)}, nil
}

// CreateCapture creates (or truncates) the file at path and returns a
// writer of a capture to it; Close also closes the file.
func CreateCapture(path string) (*CaptureWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("simulator: create capture: %w", err)
	}
	w, err := NewCaptureWriter(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	w.file = f
	return w, nil
}

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
	if _, err := w.enc.Write(b); err != nil {
		return fmt.Errorf("simulator: write capture: %w", err)
	}
	return nil
}

// Flush compresses what was written so far and hands it to the underlying
// writer, so a reader sees complete lines.
func (w *CaptureWriter) Flush() error {
	if w.closed {
		return ErrClosed
	}
	if err := w.enc.Flush(); err != nil {
		return fmt.Errorf("simulator: flush capture: %w", err)
	}
	return nil
}

// Close ends the zstd stream (and closes the file CreateCapture opened).
// It is safe to call twice.
func (w *CaptureWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.enc.Close()
	if err != nil {
		err = fmt.Errorf("simulator: close capture: %w", err)
	}
	if w.file != nil {
		if cerr := w.file.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("simulator: close capture: %w", cerr)
		}
	}
	return err
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
