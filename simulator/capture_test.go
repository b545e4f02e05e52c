package simulator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/shopspring/decimal"

	"tickerd/feed"
)

// simUpdates returns n simulated updates (initial records first) with ts
// one millisecond apart.
func simUpdates(t testing.TB, cfg Config, n int) []feed.Update {
	t.Helper()
	s := newSim(t, cfg)
	start := time.Unix(1_700_000_000, 0)
	out := make([]feed.Update, n)
	for i := range out {
		now := start.Add(time.Duration(i) * time.Millisecond)
		if i < len(s.syms) {
			s.Initial(i, &out[i], now)
		} else {
			s.Next(&out[i], now)
		}
		out[i].TS = now.UnixMicro()
	}
	return out
}

// compress returns text as a zstd stream.
func compress(t testing.TB, text string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeCapture(t testing.TB, updates []feed.Update) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewCaptureWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range updates {
		if err := w.Write(&updates[i]); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeCaptureFile writes updates as a capture file at path (with its
// index).
func writeCaptureFile(t testing.TB, path string, updates []feed.Update) {
	t.Helper()
	w, err := CreateCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range updates {
		if err := w.Write(&updates[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// readCapture reads a whole capture, returning the updates before the
// first error and that error (nil at a clean end).
func readCapture(t testing.TB, data []byte) ([]feed.Update, error) {
	t.Helper()
	r, err := NewCaptureReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return readFrom(t, r)
}

func sameUpdate(a, b *feed.Update) bool {
	if a.Symbol != b.Symbol || a.TS != b.TS || a.Set != b.Set {
		return false
	}
	for f := range feed.NumFields {
		if !a.Values[f].Equal(b.Values[f]) {
			return false
		}
	}
	return true
}

func TestCaptureRoundTrip(t *testing.T) {
	updates := simUpdates(t, Config{Symbols: 50}, 5000)
	odd := feed.Update{Symbol: "X.Y_Z:1-2", TS: 1}
	odd.Put(feed.Status, feed.StatusValue(feed.StatusHalted))
	odd.Put(feed.Bid, feed.DecimalValue(mustDecimal(t, "-0.000000000000000001")))
	odd.Put(feed.Volume, feed.DecimalValue(mustDecimal(t, "123456789012345678901234")))
	updates = append(updates, odd)
	got, err := readCapture(t, writeCapture(t, updates))
	if err != nil {
		t.Fatalf("reading back: %v", err)
	}
	if len(got) != len(updates) {
		t.Fatalf("read %d updates, wrote %d", len(got), len(updates))
	}
	for i := range got {
		if !sameUpdate(&got[i], &updates[i]) {
			t.Fatalf("update %d: read %+v, wrote %+v", i, got[i], updates[i])
		}
	}
}

func mustDecimal(t testing.TB, s string) decimal.Decimal {
	t.Helper()
	d, err := feed.ParseDecimal(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCaptureFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.zst")
	w, err := CreateCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	s := newSim(t, Config{Symbols: 10})
	start := time.Unix(1_700_000_000, 0)
	n, err := s.Generate(context.Background(), w, start, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n != 10+2*DefaultRate {
		t.Errorf("Generate wrote %d updates, want %d", n, 10+2*DefaultRate)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.Write(&feed.Update{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
	r, err := OpenCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var u feed.Update
	var count int64
	prev := int64(0)
	for ; ; count++ {
		err := r.Next(&u)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if u.TS < prev {
			t.Fatalf("line %d: ts %d before %d", r.Line(), u.TS, prev)
		}
		prev = u.TS
		if want := time.UnixMicro(u.TS).UTC().Format(feed.TimeLayout); u.Values[feed.Time].String() != want {
			t.Fatalf("line %d: time %s, ts %s", r.Line(), u.Values[feed.Time], want)
		}
	}
	if count != n {
		t.Errorf("read %d updates, wrote %d", count, n)
	}
	if want := start.Add(2 * time.Second).UnixMicro(); prev != want {
		t.Errorf("last ts %d, want %d", prev, want)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum, err := Summarize(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Summary{Updates: n, First: start.UnixMicro(), Last: prev}); sum != want {
		t.Errorf("Summarize = %+v, want %+v", sum, want)
	}
}

func TestCaptureWriterRejects(t *testing.T) {
	noTS := feed.Update{Symbol: "AAPL"}
	noTS.Put(feed.Bid, feed.DecimalValue(mustDecimal(t, "1")))
	noFields := feed.Update{Symbol: "AAPL", TS: 5}
	zeroValue := feed.Update{Symbol: "AAPL", TS: 5, Set: feed.FieldSet(0).With(feed.Ask)}
	tests := []struct {
		name string
		u    feed.Update
		want error
	}{
		{"no ts", noTS, ErrNoTS},
		{"no fields", noFields, ErrNoFields},
		{"zero value", zeroValue, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewCaptureWriter(io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			err = w.Write(&tt.u)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("Write: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestCaptureReaderErrors(t *testing.T) {
	good := `{"symbol":"AAPL","fields":{"bid":"1.5"},"ts":17}` + "\n"
	valid := writeCapture(t, simUpdates(t, Config{Symbols: 20}, 2000))
	tests := []struct {
		name     string
		data     []byte
		wantRead int    // updates read before the error
		wantErr  string // "" for a clean end
		wantLine int
	}{
		{"empty", nil, 0, "", 0},
		{"blank lines counted", compress(t, good+"\n  \n"+good+"\r\n"+good), 3, "", 0},
		{"no trailing newline", compress(t, good+strings.TrimSuffix(good, "\n")), 2, "", 0},
		{"bad json", compress(t, good+"\n{nope\n"), 1, "not a JSON object", 3},
		{"missing ts", compress(t, good+`{"symbol":"AAPL","fields":{"bid":"1"}}`), 1, `"ts"`, 2},
		{"bad value", compress(t, `{"symbol":"AAPL","fields":{"bid":"x"},"ts":1}`), 0, "field \"bid\"", 1},
		{"overlong line", compress(t, good+strings.Repeat(" ", MaxCaptureLine+1)+"\n"+good), 1, "longer than", 2},
		{"not zstd", []byte(good), 0, "capture line 1", 1},
		{"truncated", valid[:len(valid)/2], -1, "capture line", -1},
		{"corrupt", corrupt(valid), -1, "capture line", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readCapture(t, tt.data)
			if tt.wantRead >= 0 && len(got) != tt.wantRead {
				t.Errorf("read %d updates before the end, want %d", len(got), tt.wantRead)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Next: %v, want a clean end", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Next: %v, want an error containing %q", err, tt.wantErr)
			}
			var ce *CaptureError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *CaptureError", err)
			}
			if tt.wantLine >= 0 && ce.Line != tt.wantLine {
				t.Errorf("error names line %d, want %d", ce.Line, tt.wantLine)
			}
		})
	}
}

// corrupt flips bytes in the middle of a capture.
func corrupt(data []byte) []byte {
	c := bytes.Clone(data)
	for i := len(c) / 3; i < len(c)/3+64 && i < len(c); i++ {
		c[i] ^= 0x5a
	}
	return c
}

func TestCaptureReaderStaysFailed(t *testing.T) {
	r, err := NewCaptureReader(bytes.NewReader([]byte("not zstd at all")))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var u feed.Update
	first := r.Next(&u)
	if first == nil || errors.Is(first, io.EOF) {
		t.Fatalf("Next: %v, want an error", first)
	}
	if again := r.Next(&u); again != first {
		t.Errorf("second Next: %v, want the same error %v", again, first)
	}
}

func TestAppendJSONString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"189.12", `"189.12"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"tab\tnl\ncr\r\x01", `"tab\tnl\ncr\r\u0001"`},
		{"é€", `"é€"`},
		{"bad\xffutf8", `"bad\ufffdutf8"`},
	}
	for _, tt := range tests {
		if got := string(appendJSONString(nil, tt.in)); got != tt.want {
			t.Errorf("appendJSONString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func BenchmarkCaptureWrite(b *testing.B) {
	updates := simUpdates(b, Config{}, 10_000)
	w, err := NewCaptureWriter(io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := w.Write(&updates[i%len(updates)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkCaptureRead(b *testing.B) {
	data := writeCapture(b, simUpdates(b, Config{}, 10_000))
	b.SetBytes(int64(len(data)) / 10_000) // compressed bytes per update
	b.ReportAllocs()
	var u feed.Update
	var r *CaptureReader
	for b.Loop() {
		if r == nil {
			var err error
			if r, err = NewCaptureReader(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
		if err := r.Next(&u); errors.Is(err, io.EOF) {
			r.Close()
			r = nil
		} else if err != nil {
			b.Fatal(err)
		}
	}
	if r != nil {
		r.Close()
	}
}
