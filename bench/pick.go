package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// Picker chooses the symbols each session subscribes to, from a universe,
// uniformly (s = 0) or Zipf-skewed: the symbol of popularity rank r (0 is
// the most popular) has weight 1/(r+1)^s. Popularity ranks are a
// seed-determined shuffle of the universe, so hot symbols are not simply
// the first in alphabetical order. The choice for a session depends only on
// the universe, s, the seed and the session's index, never on how sessions
// are spread over goroutines or processes. A Picker is safe for concurrent
// use.
type Picker struct {
	ranked []string  // universe in popularity order
	cdf    []float64 // cumulative weights, nil when uniform
	seed   uint64
}

// NewPicker returns a Picker over universe (which it sorts and dedups into
// its own copy) with Zipf exponent s >= 0.
func NewPicker(universe []string, s float64, seed uint64) *Picker {
	u := slices.Clone(universe)
	slices.Sort(u)
	u = slices.Compact(u)
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	r.Shuffle(len(u), func(i, j int) { u[i], u[j] = u[j], u[i] })
	p := &Picker{ranked: u, seed: seed}
	if s > 0 && len(u) > 0 {
		p.cdf = make([]float64, len(u))
		var sum float64
		for i := range u {
			sum += 1 / math.Pow(float64(i+1), s)
			p.cdf[i] = sum
		}
		for i := range p.cdf {
			p.cdf[i] /= sum
		}
	}
	return p
}

// Len returns the size of the universe.
func (p *Picker) Len() int { return len(p.ranked) }

// Pick returns k distinct symbols for session index i, sorted. If k is at
// least the universe size it returns the whole universe.
func (p *Picker) Pick(i, k int) []string {
	n := len(p.ranked)
	if k >= n {
		out := slices.Clone(p.ranked)
		slices.Sort(out)
		return out
	}
	if k <= 0 {
		return nil
	}
	r := rand.New(rand.NewPCG(p.seed, uint64(i)))
	chosen := make(map[int]struct{}, k)
	// Rejection sampling is fast unless k is close to n under heavy skew;
	// past a bounded number of tries, fall back to exact weighted sampling
	// without replacement.
	for tries := 0; len(chosen) < k && tries < 20*k+100; tries++ {
		chosen[p.draw(r)] = struct{}{}
	}
	if len(chosen) < k {
		p.fill(r, chosen, k)
	}
	out := make([]string, 0, k)
	for idx := range chosen {
		out = append(out, p.ranked[idx])
	}
	slices.Sort(out)
	return out
}

// draw returns one rank.
func (p *Picker) draw(r *rand.Rand) int {
	if p.cdf == nil {
		return r.IntN(len(p.ranked))
	}
	x := r.Float64()
	j := sort.SearchFloat64s(p.cdf, x)
	return min(j, len(p.cdf)-1)
}

// fill completes chosen to k ranks with Efraimidis–Spirakis sampling: each
// remaining rank gets key u^(1/w) and the largest keys win.
func (p *Picker) fill(r *rand.Rand, chosen map[int]struct{}, k int) {
	type keyed struct {
		key  float64
		rank int
	}
	rest := make([]keyed, 0, len(p.ranked)-len(chosen))
	for rank := range p.ranked {
		if _, ok := chosen[rank]; ok {
			continue
		}
		w := 1.0
		if p.cdf != nil {
			w = p.cdf[rank]
			if rank > 0 {
				w -= p.cdf[rank-1]
			}
		}
		rest = append(rest, keyed{key: math.Log(r.Float64()) / w, rank: rank})
	}
	slices.SortFunc(rest, func(a, b keyed) int {
		if a.key != b.key {
			if a.key > b.key {
				return -1
			}
			return 1
		}
		return a.rank - b.rank
	})
	for _, kr := range rest[:k-len(chosen)] {
		chosen[kr.rank] = struct{}{}
	}
}
