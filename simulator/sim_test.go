package simulator

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tickerd/feed"
)

func newSim(t testing.TB, cfg Config) *Sim {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return s
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"one symbol", Config{Symbols: 1}, true},
		{"max symbols", Config{Symbols: MaxSymbols}, true},
		{"too many symbols", Config{Symbols: MaxSymbols + 1}, false},
		{"negative symbols", Config{Symbols: -1}, false},
		{"negative rate", Config{Rate: -5}, false},
		{"NaN rate", Config{Rate: math.NaN()}, false},
		{"infinite rate", Config{Rate: math.Inf(1)}, false},
		{"max rate", Config{Rate: MaxRate}, true},
		{"rate over max", Config{Rate: MaxRate + 1}, false},
		{"tiny rate", Config{Rate: 0.01}, true},
		{"negative seed", Config{Seed: -7}, true},
		{"each scenario", Config{Scenario: ScenarioGap}, true},
		{"unknown scenario", Config{Scenario: "meteor"}, false},
		{"halt of one symbol", Config{Symbols: 1, Scenario: ScenarioHalt}, false},
		{"open burst over max rate", Config{Rate: MaxRate, Scenario: ScenarioOpen}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if tt.ok {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if got := len(s.Symbols()); got != s.Config().Symbols {
					t.Errorf("%d symbols, config says %d", got, s.Config().Symbols)
				}
				return
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("New: got %v, want an error wrapping ErrConfig", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	got := newSim(t, Config{}).Config()
	want := Config{Symbols: 200, Rate: 2000, Seed: 1, Scenario: ScenarioSteady}
	if got != want {
		t.Errorf("Config() = %+v, want %+v", got, want)
	}
}

func TestSymbols(t *testing.T) {
	for _, n := range []int{1, 200, 5000, MaxSymbols} {
		names := newSim(t, Config{Symbols: n}).Symbols()
		if len(names) != n {
			t.Fatalf("%d symbols: got %d names", n, len(names))
		}
		if names[0] != "AAPL" {
			t.Errorf("%d symbols: first is %q, want AAPL", n, names[0])
		}
		seen := make(map[string]bool, n)
		for i, s := range names {
			if !feed.ValidSymbol(s) {
				t.Fatalf("name %d %q is not a valid symbol", i, s)
			}
			if i >= len(realTickers) && (len(s) < 3 || len(s) > 4) {
				t.Fatalf("generated name %d %q: want 3 or 4 letters", i, s)
			}
			if seen[s] {
				t.Fatalf("name %q appears twice", s)
			}
			seen[s] = true
		}
	}
	a := newSim(t, Config{Symbols: 1000, Seed: 1}).Symbols()
	b := newSim(t, Config{Symbols: 1000, Seed: 2}).Symbols()
	if !slices.Equal(a, b) {
		t.Error("symbol names depend on the seed")
	}
	a[0] = "CHANGED"
	if newSim(t, Config{Symbols: 1000}).Symbols()[0] != "AAPL" {
		t.Error("Symbols returned the Sim's own slice")
	}
}

// tick is one update without its time field.
type tick struct {
	symbol string
	set    feed.FieldSet
	values [feed.NumFields]string
}

func ticks(s *Sim, n int) []tick {
	var u feed.Update
	now := time.Unix(1_700_000_000, 0)
	out := make([]tick, n)
	for i := range out {
		s.Next(&u, now.Add(time.Duration(i)*time.Millisecond))
		tk := tick{symbol: u.Symbol, set: u.Set}
		for f, rest, ok := u.Set.Next(); ok; f, rest, ok = rest.Next() {
			if f != feed.Time {
				tk.values[f] = u.Values[f].String()
			}
		}
		out[i] = tk
	}
	return out
}

func TestDeterminism(t *testing.T) {
	const n = 20_000
	cfg := Config{Symbols: 300, Rate: 5000, Seed: 42}
	a := ticks(newSim(t, cfg), n)
	b := ticks(newSim(t, cfg), n)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("tick %d differs with the same seed:\n%+v\n%+v", i, a[i], b[i])
		}
	}
	cfg.Seed = 43
	c := ticks(newSim(t, cfg), n)
	same := 0
	for i := range a {
		if a[i] == c[i] {
			same++
		}
	}
	if same > n/10 {
		t.Errorf("seeds 42 and 43 agree on %d of %d ticks", same, n)
	}

	var u, v feed.Update
	s1, s2 := newSim(t, Config{Seed: 5}), newSim(t, Config{Seed: 5})
	now := time.Now()
	for i := range s1.Symbols() {
		s1.Initial(i, &u, now)
		s2.Initial(i, &v, now)
		for f := range feed.NumFields {
			if u.Symbol != v.Symbol || u.Set != v.Set || !u.Values[f].Equal(v.Values[f]) {
				t.Fatalf("initial record %d differs with the same seed", i)
			}
		}
	}
}

func TestInitialIsComplete(t *testing.T) {
	s := newSim(t, Config{Symbols: 500})
	var u feed.Update
	now := time.Date(2024, 3, 1, 14, 30, 0, 123456789, time.UTC)
	for i, name := range s.Symbols() {
		s.Initial(i, &u, now)
		if u.Symbol != name || u.Set != feed.AllFields {
			t.Fatalf("initial %d: symbol %q set %b, want %q with every field", i, u.Symbol, u.Set, name)
		}
		if got := u.Values[feed.Status].String(); got != feed.StatusTrading {
			t.Errorf("%s: status %q", name, got)
		}
		if got := u.Values[feed.Time].String(); got != "2024-03-01T14:30:00.123456Z" {
			t.Errorf("%s: time %q", name, got)
		}
		if !u.Values[feed.Open].Equal(u.Values[feed.Last]) {
			t.Errorf("%s: open %s is not the first last %s", name, u.Values[feed.Open], u.Values[feed.Last])
		}
	}
}

// book is what a subscriber would know of one symbol.
type book [feed.NumFields]feed.Value

func (b *book) dec(f feed.Field) decimal.Decimal { return b[f].Decimal() }

func onGrid(p decimal.Decimal) bool {
	tick := decimal.New(1, -2)
	if p.LessThan(decimal.NewFromInt(1)) {
		tick = decimal.New(1, -4)
	}
	return p.Mod(tick).IsZero()
}

// checkBook checks the invariants of a symbol's record after an update of
// the fields in set.
func checkBook(t *testing.T, sym string, b *book, set feed.FieldSet, lot decimal.Decimal) {
	t.Helper()
	bid, ask, last := b.dec(feed.Bid), b.dec(feed.Ask), b.dec(feed.Last)
	high, low, prev := b.dec(feed.High), b.dec(feed.Low), b.dec(feed.PrevClose)
	if bid.Sign() <= 0 || !bid.LessThan(ask) {
		t.Fatalf("%s: bid %s, ask %s", sym, bid, ask)
	}
	for _, f := range []feed.Field{feed.Bid, feed.Ask, feed.Last, feed.Open, feed.High, feed.Low, feed.PrevClose} {
		if set.Has(f) && !onGrid(b.dec(f)) { // fields not in set were checked when they were
			t.Fatalf("%s: %s %s is off the tick grid", sym, f, b[f])
		}
	}
	if high.LessThan(low) || last.LessThan(low) || last.GreaterThan(high) {
		t.Fatalf("%s: low %s last %s high %s", sym, low, last, high)
	}
	if want := last.Sub(prev); !b.dec(feed.Change).Equal(want) {
		t.Fatalf("%s: change %s, want last %s − prevClose %s = %s", sym, b[feed.Change], last, prev, want)
	}
	if set.Has(feed.Last) || set.Has(feed.ChangePct) { // the costly check, only when it may have changed
		want := last.Sub(prev).Mul(decimal.NewFromInt(100)).Div(prev).Round(2)
		if !b.dec(feed.ChangePct).Equal(want) {
			t.Fatalf("%s: changePct %s, want %s", sym, b[feed.ChangePct], want)
		}
	}
	for _, f := range []feed.Field{feed.BidSize, feed.AskSize, feed.LastSize} {
		if d := b.dec(f); set.Has(f) && (d.Sign() <= 0 || !d.Mod(lot).IsZero()) {
			t.Fatalf("%s: %s %s is not a positive multiple of the lot %s", sym, f, d, lot)
		}
	}
}

func TestRealism(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"default", Config{}},
		// Many symbols at a low rate: big moves per tick, and sub-dollar
		// symbols whose prices may cross 1.00.
		{"pennies", Config{Symbols: 3000, Rate: 20, Seed: 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, tt.cfg)
			books := map[string]*book{}
			lots := map[string]decimal.Decimal{}
			roundLots := 0
			var u feed.Update
			now := time.Unix(1_700_000_000, 0)
			pennies := 0
			for i, name := range s.Symbols() {
				s.Initial(i, &u, now)
				b := new(book)
				*b = u.Values
				books[name], lots[name] = b, decimal.NewFromInt(s.syms[i].lot)
				if s.syms[i].lot == 100 {
					roundLots++
				} else if s.syms[i].lot != 1 {
					t.Fatalf("%s: lot %d, want 1 or 100", name, s.syms[i].lot)
				}
				checkBook(t, name, b, feed.AllFields, lots[name])
				if b.dec(feed.Bid).LessThan(decimal.NewFromInt(1)) {
					pennies++
				}
			}
			if tt.name == "pennies" && pennies == 0 {
				t.Fatal("no sub-dollar symbol to test")
			}
			if n := len(books); roundLots < n/2 || roundLots == n {
				t.Errorf("%d of %d symbols trade in lots of 100: want most, not all", roundLots, n)
			}
			counts := map[string]int{}
			for i := range 100_000 {
				s.Next(&u, now.Add(time.Duration(i)*time.Millisecond))
				b := books[u.Symbol]
				if b == nil {
					t.Fatalf("tick %d: unknown symbol %q", i, u.Symbol)
				}
				if !u.Set.Has(feed.Time) || u.Set.Len() < 2 {
					t.Fatalf("tick %d: fields %b: want time and at least one more", i, u.Set)
				}
				vol := b.dec(feed.Volume)
				changed := false
				for f, rest, ok := u.Set.Next(); ok; f, rest, ok = rest.Next() {
					changed = changed || (f != feed.Time && !b[f].Equal(u.Values[f]))
					b[f] = u.Values[f]
				}
				if !changed {
					t.Fatalf("tick %d (%s): changes nothing but time", i, u.Symbol)
				}
				if b.dec(feed.Volume).LessThan(vol) {
					t.Fatalf("tick %d (%s): volume went down from %s to %s", i, u.Symbol, vol, b[feed.Volume])
				}
				if u.Set.Has(feed.LastSize) && !b.dec(feed.Volume).Equal(vol.Add(b.dec(feed.LastSize))) {
					t.Fatalf("tick %d (%s): volume %s, want %s + %s", i, u.Symbol, b[feed.Volume], vol, b[feed.LastSize])
				}
				checkBook(t, u.Symbol, b, u.Set, lots[u.Symbol])
				counts[u.Symbol]++
			}
			if tt.name == "default" && counts["AAPL"] <= counts[s.Symbols()[199]] {
				t.Errorf("AAPL ticked %d times, the last symbol %d: want a skew", counts["AAPL"], counts[s.Symbols()[199]])
			}
		})
	}
}

func TestQuoteGrid(t *testing.T) {
	tests := []struct {
		name     string
		mid      float64
		spread   int
		bid, ask int64
	}{
		{"dollar stock", 1_891_250, 1, 1_891_200, 1_891_300},
		{"wide spread", 1_891_250, 4, 1_891_000, 1_891_400},
		{"penny stock", 1_921.4, 1, 1_920, 1_921},
		{"ask crosses 1.00", 9_999.2, 3, 9_997, 10_000},
		{"ask rounds up past 1.00", 9_999.9, 5, 9_997, 10_100},
		{"bid just under 1.00", 10_020, 1, 9_970, 9_971},
		{"floor", 0.3, 2, 1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bid, ask := quote(tt.mid, tt.spread)
			if bid != tt.bid || ask != tt.ask {
				t.Errorf("quote(%v, %d) = %d, %d; want %d, %d", tt.mid, tt.spread, bid, ask, tt.bid, tt.ask)
			}
		})
	}
}

func TestDivRound(t *testing.T) {
	tests := []struct{ n, d, want int64 }{
		{10, 4, 3}, {-10, 4, -3}, {9, 4, 2}, {-9, 4, -2}, {11, 4, 3}, {0, 7, 0}, {1, 3, 0}, {2, 3, 1}, {-2, 3, -1},
	}
	for _, tt := range tests {
		if got := divRound(tt.n, tt.d); got != tt.want {
			t.Errorf("divRound(%d, %d) = %d, want %d", tt.n, tt.d, got, tt.want)
		}
	}
}

func TestNextAllocs(t *testing.T) {
	s := newSim(t, Config{})
	var u feed.Update
	now := time.Now()
	for range 10_000 { // warm the value cache
		s.Next(&u, now)
	}
	if got := testing.AllocsPerRun(20_000, func() { s.Next(&u, now) }); got > 3 {
		t.Errorf("Next allocates %.2f times per update, want at most 3", got)
	}
}
