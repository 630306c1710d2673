package main

import (
	"math"
	"testing"
)

func TestPercentileInterpolatesBetweenRanks(t *testing.T) {
	samples := []float64{4, 1, 3, 2} // unsorted on purpose
	cases := []struct {
		p, want float64
	}{
		{0, 1}, {50, 2.5}, {100, 4}, {99, 3.97}, {25, 1.75}, {-5, 1}, {150, 4},
	}
	for _, c := range cases {
		if got := Percentile(samples, c.p); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Percentile(%v, %v) = %v, want %v", samples, c.p, got, c.want)
		}
	}
	if samples[0] != 4 {
		t.Errorf("Percentile sorted its input: %v", samples)
	}
}

func TestPercentileOfNothingIsNaN(t *testing.T) {
	if got := Percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("Percentile(nil, 50) = %v, want NaN", got)
	}
	if s := Summarize(nil); s.N != 0 || !math.IsNaN(s.P50) {
		t.Errorf("Summarize(nil) = %+v, want N=0 and NaN figures", s)
	}
}

func TestSummarizeOneSample(t *testing.T) {
	s := Summarize([]float64{7})
	if s != (Summary{N: 1, Min: 7, P50: 7, P99: 7, Max: 7}) {
		t.Errorf("Summarize([7]) = %+v", s)
	}
}

func TestSummarizeHundredSamples(t *testing.T) {
	var samples []float64
	for i := 100; i >= 1; i-- {
		samples = append(samples, float64(i))
	}
	s := Summarize(samples)
	if s.P50 != 50.5 || math.Abs(s.P99-99.01) > 1e-9 || s.Min != 1 || s.Max != 100 {
		t.Errorf("Summarize(1..100) = %+v, want p50 50.5, p99 99.01", s)
	}
}
