package bench

import "testing"

func TestHistSub(t *testing.T) {
	h := newHist(maxLatencyUS)
	for v := range int64(100) {
		h.Record(1000 + v)
	}
	before := newHist(maxLatencyUS)
	before.Merge(h)
	for range 300 {
		h.Record(50_000)
	}
	d := h.Sub(before)
	if d.Count() != 300 || d.Quantile(0.01) < 49_000 || d.Quantile(0.5) > 51_000 {
		t.Errorf("difference: %d values, p1 %d, p50 %d; want 300 values near 50,000", d.Count(), d.Quantile(0.01), d.Quantile(0.5))
	}
	if h.Count() != 400 || before.Count() != 100 {
		t.Errorf("operands changed: %d and %d values", h.Count(), before.Count())
	}
	if d := before.Sub(h); d.Count() != 0 {
		t.Errorf("a later copy subtracted: %d values, want 0", d.Count())
	}
	if d := h.Sub(nil); d.Count() != 400 {
		t.Errorf("nothing subtracted: %d values", d.Count())
	}
}
