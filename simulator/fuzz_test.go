package simulator

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"tickerd/feed"
)

// FuzzCaptureReader feeds arbitrary bytes to a CaptureReader: it must end
// with io.EOF or an error, never panic, and whatever it reads must be a
// valid update that writes back and reads back the same.
func FuzzCaptureReader(f *testing.F) {
	f.Add(writeCapture(f, simUpdates(f, Config{Symbols: 3}, 6)))
	f.Add(compress(f, `{"symbol":"AAPL","fields":{"bid":"189.12","bidSize":300},"ts":1700000000000000}`+"\n\n"))
	f.Add(compress(f, `{"symbol":"AAPL","fields":{"bid":1e3},"ts":1}`+"\n"+`[1,2]`+"\n"))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58})
	f.Add([]byte(`{"symbol":"AAPL"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewCaptureReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var u feed.Update
		for range 1000 {
			err := r.Next(&u)
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				var ce *CaptureError
				if !errors.As(err, &ce) || ce.Line < 1 {
					t.Fatalf("error %v (%T) does not name a line", err, err)
				}
				continue // after a bad line the next one may be good
			}
			if !feed.ValidSymbol(u.Symbol) || u.TS <= 0 || u.Set == 0 {
				t.Fatalf("read an invalid update %+v", u)
			}
			back, err := readCapture(t, writeCapture(t, []feed.Update{u}))
			if err != nil || len(back) != 1 || !sameUpdate(&back[0], &u) {
				t.Fatalf("update %+v does not round-trip: %v %+v", u, err, back)
			}
		}
	})
}

// FuzzCaptureLine checks the fast path of capture lines against
// feed.ParseLine: whatever line it takes, it reads as ParseLine does.
func FuzzCaptureLine(f *testing.F) {
	for _, u := range simUpdates(f, Config{Symbols: 3}, 6) {
		b, err := appendLine(nil, &u, true)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bytes.TrimSuffix(b, []byte("\n")))
	}
	for _, s := range []string{
		`{"symbol":"AAPL","fields":{"bid":"189.12","bid":"1"},"ts":1}`,
		`{"symbol":"AAPL","fields":{"bid":"1e3"},"ts":007}`,
		`{"symbol":"AAPL","fields":{"bid":1.5},"ts":1}`,
		`{"symbol":"AAPL","fields":{"status":"halted","time":"2026-11-22T04:00:00.5Z"},"ts":1}`,
		`{"symbol":"A\u0041","fields":{"bid":"1"},"ts":1}`,
		`{"symbol":"AAPL","fields":{},"ts":1}`,
		`{"symbol":"AAPL","fields":{"bid":"1"},"ts":99999999999999999999}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow feed.Update
		if !parseCanonical(b, &fast) {
			return
		}
		if err := feed.ParseLine(b, &slow); err != nil {
			t.Fatalf("the fast path took %q, ParseLine rejects it: %v", b, err)
		}
		if !sameUpdate(&fast, &slow) {
			t.Fatalf("%q: fast path %+v, ParseLine %+v", b, fast, slow)
		}
	})
}
