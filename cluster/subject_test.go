package cluster

import (
	"testing"

	"tickerd/feed"
)

func TestSymbolEncoding(t *testing.T) {
	cases := []struct{ sym, token string }{
		{"AAPL", "AAPL"},
		{"BRK.A", "BRK=2EA"},
		{"EUR:USD", "EUR=3AUSD"},
		{"A..B:", "A=2E=2EB=3A"},
		{"X_1-2", "X_1-2"},
	}
	for _, tc := range cases {
		t.Run(tc.sym, func(t *testing.T) {
			if got := encodeSymbol(tc.sym); got != tc.token {
				t.Errorf("encode %q = %q, want %q", tc.sym, got, tc.token)
			}
			if got := decodeSymbol(tc.token); got != tc.sym {
				t.Errorf("decode %q = %q, want %q", tc.token, got, tc.sym)
			}
		})
	}
}

// FuzzSymbolEncoding: every valid symbol survives the round trip and
// makes one subject token (no '.', '*', '>' or space).
func FuzzSymbolEncoding(f *testing.F) {
	for _, s := range []string{"AAPL", "BRK.A", "EUR:USD", "A..B:", "9.:_-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sym string) {
		if !feed.ValidSymbol(sym) {
			return
		}
		tok := encodeSymbol(sym)
		for i := 0; i < len(tok); i++ {
			switch tok[i] {
			case '.', '*', '>', ' ', ':':
				t.Fatalf("token %q of %q holds %q", tok, sym, tok[i])
			}
		}
		if back := decodeSymbol(tok); back != sym {
			t.Fatalf("%q → %q → %q", sym, tok, back)
		}
	})
}

func TestAppendUpdateParses(t *testing.T) {
	var u feed.Update
	u.Symbol = "BRK.A"
	bid, _ := feed.ParseText(feed.Bid, "189.12")
	st, _ := feed.ParseText(feed.Status, "halted")
	u.Put(feed.Bid, bid)
	u.Put(feed.Status, st)
	b := appendUpdate(nil, &u, 1700000000000001)
	var got feed.Update
	if err := feed.ParseLine(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if got.Symbol != u.Symbol || got.TS != 1700000000000001 || got.Set != u.Set ||
		!got.Values[feed.Bid].Equal(bid) || !got.Values[feed.Status].Equal(st) {
		t.Fatalf("%s parsed as %+v", b, got)
	}
}
