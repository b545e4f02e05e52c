package simulator

import (
	"math/bits"

	"github.com/shopspring/decimal"

	"tickerd/feed"
)

// valueCache remembers the feed.Value of recently emitted decimals, so that
// a price or size seen before costs no allocation. It is direct-mapped: a
// miss evicts whatever shared the slot.
type valueCache struct {
	slots []cacheSlot
	shift uint
}

type cacheSlot struct {
	n   int64
	exp int32
	v   feed.Value // zero: empty slot
}

// newValueCache sizes the cache for a number of symbols: about 32 slots
// each, between 4 Ki and 64 Ki slots.
func newValueCache(symbols int) valueCache {
	n := min(max(symbols*32, 4096), 1<<16)
	b := bits.Len(uint(n - 1))
	return valueCache{slots: make([]cacheSlot, 1<<b), shift: uint(64 - b)}
}

// get returns the value of n·10^exp.
func (c *valueCache) get(n int64, exp int32) feed.Value {
	h := (uint64(n) ^ uint64(uint32(exp))<<40) * 0x9e3779b97f4a7c15
	s := &c.slots[h>>c.shift]
	if s.n == n && s.exp == exp && !s.v.IsZero() {
		return s.v
	}
	v := feed.DecimalValue(decimal.New(n, exp))
	*s = cacheSlot{n: n, exp: exp, v: v}
	return v
}
