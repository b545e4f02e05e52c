package bench

import (
	"fmt"
	"slices"
	"testing"
)

func universe(n int) []string {
	u := make([]string, n)
	for i := range u {
		u[i] = fmt.Sprintf("S%04d", i)
	}
	return u
}

func TestPickerDeterministic(t *testing.T) {
	tests := []struct {
		name string
		zipf float64
	}{
		{name: "uniform", zipf: 0},
		{name: "zipf 0.8", zipf: 0.8},
		{name: "zipf 1.5", zipf: 1.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := universe(500)
			a := NewPicker(u, tt.zipf, 7)
			shuffled := slices.Clone(u)
			slices.Reverse(shuffled)
			b := NewPicker(append(shuffled, u[:10]...), tt.zipf, 7) // order and duplicates do not matter
			for i := range 50 {
				pa, pb := a.Pick(i, 20), b.Pick(i, 20)
				if !slices.Equal(pa, pb) {
					t.Fatalf("session %d: %v vs %v", i, pa, pb)
				}
				if len(pa) != 20 || !slices.IsSorted(pa) || len(slices.Compact(slices.Clone(pa))) != 20 {
					t.Fatalf("session %d: not 20 sorted distinct symbols: %v", i, pa)
				}
			}
			if slices.Equal(a.Pick(1, 20), a.Pick(2, 20)) {
				t.Error("sessions 1 and 2 picked the same symbols")
			}
			if slices.Equal(a.Pick(1, 20), NewPicker(u, tt.zipf, 8).Pick(1, 20)) {
				t.Error("another seed picked the same symbols")
			}
		})
	}
}

func TestPickerSkew(t *testing.T) {
	u := universe(1000)
	count := func(p *Picker) (top int) {
		hits := map[string]int{}
		for i := range 2000 {
			for _, s := range p.Pick(i, 10) {
				hits[s]++
			}
		}
		for _, n := range hits {
			top = max(top, n)
		}
		return top
	}
	uniform, skewed := count(NewPicker(u, 0, 1)), count(NewPicker(u, 1.2, 1))
	// Uniform: each symbol is in 1% of sessions (20 of 2000); skewed: the
	// hottest symbol is in most of them.
	if uniform > 60 || skewed < 1000 {
		t.Fatalf("hottest symbol: uniform %d sessions, zipf 1.2 %d sessions", uniform, skewed)
	}
}

func TestPickerEdges(t *testing.T) {
	u := universe(30)
	p := NewPicker(u, 3, 1) // heavy skew, k close to n: the exact fallback
	for i := range 20 {
		got := p.Pick(i, 29)
		if len(got) != 29 || len(slices.Compact(slices.Clone(got))) != 29 {
			t.Fatalf("session %d: %d symbols %v", i, len(got), got)
		}
	}
	if got := p.Pick(0, 100); !slices.Equal(got, u) {
		t.Fatalf("k over the universe: %v", got)
	}
	if got := p.Pick(0, 0); got != nil {
		t.Fatalf("k = 0: %v", got)
	}
}
