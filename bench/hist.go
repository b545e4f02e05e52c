package bench

import (
	"encoding/json"
	"fmt"
	"math"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram ranges, in microseconds.
const (
	histSigFigs  = 3
	maxLatencyUS = int64(3600e6) // an hour: anything older is clamped
	maxConnectUS = int64(120e6)  // two minutes
	histLowest   = 1
)

// Hist is an HDR histogram of microsecond values that marshals to JSON as a
// summary (count, min, mean, percentiles, max, all in microseconds) plus
// "hdr", the base64 V2-compressed histogram, which is what UnmarshalJSON
// reads back; so reports from several processes merge exactly. The zero
// Hist is not usable; use newHist. A Hist is not safe for concurrent use.
type Hist struct {
	h *hdrhistogram.Histogram
}

func newHist(highest int64) *Hist {
	return &Hist{h: hdrhistogram.New(histLowest, highest, histSigFigs)}
}

// Record adds one value, clamped into [0, the histogram's highest value].
func (h *Hist) Record(us int64) {
	h.RecordN(us, 1)
}

// RecordN adds n occurrences of one value, clamped like Record.
func (h *Hist) RecordN(us, n int64) {
	us = max(us, 0)
	us = min(us, h.h.HighestTrackableValue())
	_ = h.h.RecordValues(us, n) // in range by construction
}

// Merge adds every value of o to h. Values beyond h's range are clamped.
func (h *Hist) Merge(o *Hist) {
	if o == nil || o.h == nil {
		return
	}
	if dropped := h.h.Merge(o.h); dropped > 0 {
		h.RecordN(math.MaxInt64, dropped)
	}
}

// Count returns the number of values recorded.
func (h *Hist) Count() int64 { return h.h.TotalCount() }

// Quantile returns the value at quantile q in [0, 1] (0 when empty).
func (h *Hist) Quantile(q float64) int64 { return h.h.ValueAtQuantile(q * 100) }

// Max returns the largest value recorded (0 when empty).
func (h *Hist) Max() int64 {
	if h.h.TotalCount() == 0 {
		return 0
	}
	return h.h.Max()
}

// Sub returns a new Hist of the values of h that are not in o, an earlier
// copy of h with the same range (a count o has more of counts as zero).
func (h *Hist) Sub(o *Hist) *Hist {
	a := h.h.Export()
	if o != nil && o.h != nil {
		b := o.h.Export()
		for i := range min(len(a.Counts), len(b.Counts)) {
			a.Counts[i] = max(0, a.Counts[i]-b.Counts[i])
		}
	}
	return &Hist{h: hdrhistogram.Import(a)}
}

// Reset empties h.
func (h *Hist) Reset() { h.h.Reset() }

type histJSON struct {
	Count int64   `json:"count"`
	Min   int64   `json:"min"`
	Mean  float64 `json:"mean"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p999"`
	Max   int64   `json:"max"`
	HDR   string  `json:"hdr"`
}

// MarshalJSON writes the summary and the encoded histogram.
func (h *Hist) MarshalJSON() ([]byte, error) {
	enc, err := h.h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, fmt.Errorf("bench: encode histogram: %w", err)
	}
	j := histJSON{Count: h.Count(), HDR: string(enc)}
	if j.Count > 0 {
		j.Min, j.Mean, j.Max = h.h.Min(), math.Round(h.h.Mean()*10)/10, h.Max()
		j.P50, j.P90, j.P99, j.P999 = h.Quantile(0.50), h.Quantile(0.90), h.Quantile(0.99), h.Quantile(0.999)
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the "hdr" member written by MarshalJSON.
func (h *Hist) UnmarshalJSON(data []byte) error {
	var j histJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	d, err := hdrhistogram.Decode([]byte(j.HDR))
	if err != nil {
		return fmt.Errorf("bench: decode histogram: %w", err)
	}
	if err := d.Export().Validate(); err != nil {
		return fmt.Errorf("bench: decode histogram: %w", err)
	}
	h.h = d
	return nil
}
