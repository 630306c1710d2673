package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"sort"
	"strings"
)

// font3x5 is a 3×5 pixel font, enough for axis labels and a legend; text
// is drawn upper-case. Each glyph is five rows of three pixels.
var font3x5 = map[rune][5]string{
	'A': {"###", "#.#", "###", "#.#", "#.#"}, 'B': {"##.", "#.#", "##.", "#.#", "##."},
	'C': {"###", "#..", "#..", "#..", "###"}, 'D': {"##.", "#.#", "#.#", "#.#", "##."},
	'E': {"###", "#..", "##.", "#..", "###"}, 'F': {"###", "#..", "##.", "#..", "#.."},
	'G': {"###", "#..", "#.#", "#.#", "###"}, 'H': {"#.#", "#.#", "###", "#.#", "#.#"},
	'I': {"###", ".#.", ".#.", ".#.", "###"}, 'J': {"..#", "..#", "..#", "#.#", "###"},
	'K': {"#.#", "#.#", "##.", "#.#", "#.#"}, 'L': {"#..", "#..", "#..", "#..", "###"},
	'M': {"#.#", "###", "###", "#.#", "#.#"}, 'N': {"##.", "#.#", "#.#", "#.#", "#.#"},
	'O': {"###", "#.#", "#.#", "#.#", "###"}, 'P': {"###", "#.#", "###", "#..", "#.."},
	'Q': {"###", "#.#", "#.#", "###", "..#"}, 'R': {"##.", "#.#", "##.", "#.#", "#.#"},
	'S': {"###", "#..", "###", "..#", "###"}, 'T': {"###", ".#.", ".#.", ".#.", ".#."},
	'U': {"#.#", "#.#", "#.#", "#.#", "###"}, 'V': {"#.#", "#.#", "#.#", "#.#", ".#."},
	'W': {"#.#", "#.#", "###", "###", "#.#"}, 'X': {"#.#", "#.#", ".#.", "#.#", "#.#"},
	'Y': {"#.#", "#.#", ".#.", ".#.", ".#."}, 'Z': {"###", "..#", ".#.", "#..", "###"},
	'0': {"###", "#.#", "#.#", "#.#", "###"}, '1': {".#.", "##.", ".#.", ".#.", "###"},
	'2': {"###", "..#", "###", "#..", "###"}, '3': {"###", "..#", "###", "..#", "###"},
	'4': {"#.#", "#.#", "###", "..#", "..#"}, '5': {"###", "#..", "###", "..#", "###"},
	'6': {"###", "#..", "###", "#.#", "###"}, '7': {"###", "..#", "..#", "..#", "..#"},
	'8': {"###", "#.#", "###", "#.#", "###"}, '9': {"###", "#.#", "###", "..#", "###"},
	'.': {"...", "...", "...", "...", ".#."}, ',': {"...", "...", "...", ".#.", "#.."},
	'-': {"...", "...", "###", "...", "..."}, '>': {"#..", ".#.", "..#", ".#.", "#.."},
	'(': {".#.", "#..", "#..", "#..", ".#."}, ')': {".#.", "..#", "..#", "..#", ".#."},
	'/': {"..#", "..#", ".#.", "#..", "#.."}, ':': {"...", ".#.", "...", ".#.", "..."},
	'%': {"#.#", "..#", ".#.", "#..", "#.#"}, '=': {"...", "###", "...", "###", "..."},
	'_': {"...", "...", "...", "...", "###"}, '+': {"...", ".#.", "###", ".#.", "..."},
	' ': {"...", "...", "...", "...", "..."},
}

const fontScale = 2

// textWidth is the width in pixels of s drawn by drawText.
func textWidth(s string) int { return len([]rune(s)) * 4 * fontScale }

func drawText(img *image.RGBA, x, y int, s string, c color.Color) {
	for i, r := range strings.ToUpper(s) {
		g, ok := font3x5[r]
		if !ok {
			g = font3x5['-']
		}
		for row := 0; row < 5; row++ {
			for col := 0; col < 3; col++ {
				if g[row][col] != '#' {
					continue
				}
				for dy := 0; dy < fontScale; dy++ {
					for dx := 0; dx < fontScale; dx++ {
						img.Set(x+(i*4+col)*fontScale+dx, y+row*fontScale+dy, c)
					}
				}
			}
		}
	}
}

func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.Set(x0, y0, c)
		img.Set(x0, y0+1, c) // two pixels thick
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// Series is one curve of the plot.
type Series struct {
	Label   string
	Samples []float64
}

var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xd6, 0x27, 0x28, 0xff}, {0x2c, 0xa0, 0x2c, 0xff},
	{0xff, 0x7f, 0x0e, 0xff}, {0x94, 0x67, 0xbd, 0xff},
}

// niceStep picks a tick spacing of 1, 2 or 5 times a power of ten that
// gives about n ticks up to top.
func niceStep(top float64, n int) float64 {
	raw := top / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// WriteCDFPlot writes a PNG of the empirical distribution (CDF) of each
// series, x in ms up to the largest p99 (plus a margin), to path.
func WriteCDFPlot(path, title, xLabel string, series []Series) error {
	const w, h = 900, 540
	const left, right, top, bottom = 80, 30, 50, 70
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	white := color.RGBA{0xff, 0xff, 0xff, 0xff}
	black := color.RGBA{0, 0, 0, 0xff}
	grey := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, white)
		}
	}
	xMax := 0.0
	for _, s := range series {
		if len(s.Samples) > 0 {
			xMax = math.Max(xMax, Percentile(s.Samples, 99))
		}
	}
	if xMax <= 0 {
		return fmt.Errorf("plot: no samples")
	}
	step := niceStep(xMax*1.1, 8)
	xMax = math.Ceil(xMax*1.1/step) * step
	pw, ph := w-left-right, h-top-bottom
	px := func(v float64) int { return left + int(math.Round(math.Min(v, xMax)/xMax*float64(pw))) }
	py := func(f float64) int { return top + ph - int(math.Round(f*float64(ph))) }

	for v := 0.0; v <= xMax+step/2; v += step {
		line(img, px(v), top, px(v), top+ph, grey)
		label := fmt.Sprintf("%g", math.Round(v*1000)/1000)
		drawText(img, px(v)-textWidth(label)/2, top+ph+10, label, black)
	}
	for f := 0.0; f <= 1.0001; f += 0.25 {
		line(img, left, py(f), left+pw, py(f), grey)
		label := fmt.Sprintf("%g", f)
		drawText(img, left-10-textWidth(label), py(f)-5, label, black)
	}
	line(img, left, top, left, top+ph, black)
	line(img, left, top+ph, left+pw, top+ph, black)
	drawText(img, left+(pw-textWidth(xLabel))/2, h-30, xLabel, black)
	drawText(img, 10, top-30, "CDF", black)
	drawText(img, left+(pw-textWidth(title))/2, 12, title, black)

	for i, s := range series {
		if len(s.Samples) == 0 {
			continue
		}
		c := palette[i%len(palette)]
		sorted := append([]float64(nil), s.Samples...)
		sort.Float64s(sorted)
		prevX, prevY := px(sorted[0]), py(0)
		for j, v := range sorted {
			x, y := px(v), py(float64(j+1)/float64(len(sorted)))
			line(img, prevX, prevY, x, prevY, c) // a step function
			line(img, x, prevY, x, y, c)
			prevX, prevY = x, y
		}
	}

	legendX := left + pw - 370
	for y := top + 12; y < top+12+18*len(series)+8; y++ {
		for x := legendX - 8; x < left+pw-2; x++ {
			img.Set(x, y, white)
		}
	}
	for i, s := range series {
		if len(s.Samples) == 0 {
			continue
		}
		c := palette[i%len(palette)]
		ly := top + 20 + i*18
		line(img, legendX, ly+4, legendX+24, ly+4, c)
		drawText(img, legendX+32, ly, fmt.Sprintf("%s  p50 %.2f  p99 %.2f", s.Label, Percentile(s.Samples, 50), Percentile(s.Samples, 99)), c)
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
