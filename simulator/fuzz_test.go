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
