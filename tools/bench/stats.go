package main

import (
	"math"
	"sort"
	"time"
)

// Summary is the distribution of one measurement over repeated runs.
type Summary struct {
	N   int     `json:"n"`
	Min float64 `json:"min"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Percentile returns the p-th percentile (0..100) of samples by linear
// interpolation between closest ranks (the method of numpy's default and
// of most spreadsheets). It returns NaN for no samples and does not modify
// samples.
func Percentile(samples []float64, p float64) float64 {
	if len(samples) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	return percentileSorted(s, p)
}

func percentileSorted(s []float64, p float64) float64 {
	if p <= 0 {
		return s[0]
	}
	if p >= 100 {
		return s[len(s)-1]
	}
	rank := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	frac := rank - float64(lo)
	return s[lo] + (s[hi]-s[lo])*frac
}

// Summarize returns min, median, p99 and max of samples; N is 0 (and the
// figures NaN) when there are none.
func Summarize(samples []float64) Summary {
	if len(samples) == 0 {
		nan := math.NaN()
		return Summary{Min: nan, P50: nan, P99: nan, Max: nan}
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	return Summary{
		N:   len(s),
		Min: s[0],
		P50: percentileSorted(s, 50),
		P99: percentileSorted(s, 99),
		Max: s[len(s)-1],
	}
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
