package main

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteCDFPlotWritesAPNG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plot.png")
	series := []Series{{Label: "a", Samples: []float64{1, 2, 3}}, {Label: "b", Samples: []float64{2.5}}}
	if err := WriteCDFPlot(path, "title", "ms", series); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 900 || b.Dy() != 540 {
		t.Errorf("plot is %v, want 900×540", b)
	}
}

func TestWriteCDFPlotRefusesNoSamples(t *testing.T) {
	if err := WriteCDFPlot(filepath.Join(t.TempDir(), "p.png"), "t", "ms", nil); err == nil {
		t.Error("WriteCDFPlot with no samples: no error")
	}
}

func TestNiceStep(t *testing.T) {
	for _, c := range []struct{ top, want float64 }{{250, 50}, {10, 2}, {0.9, 0.2}} {
		if got := niceStep(c.top, 8); got != c.want {
			t.Errorf("niceStep(%v, 8) = %v, want %v", c.top, got, c.want)
		}
	}
}
