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
	p := &cdfPlot{
		img:  image.NewRGBA(image.Rect(0, 0, plotW, plotH)),
		xMax: math.Ceil(xMax*1.1/step) * step,
		step: step,
	}
	fill(p.img, 0, 0, plotW, plotH, white)
	p.drawFrame(title, xLabel)
	p.drawCurves(series)
	p.drawLegend(series)
	return writePNG(path, p.img)
}

// The plot's size and the margins around its drawing area, in pixels.
const (
	plotW, plotH                             = 900, 540
	plotLeft, plotRight, plotTop, plotBottom = 80, 30, 50, 70
	areaW, areaH                             = plotW - plotLeft - plotRight, plotH - plotTop - plotBottom
)

var (
	white = color.RGBA{0xff, 0xff, 0xff, 0xff}
	black = color.RGBA{0, 0, 0, 0xff}
	grey  = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
)

// cdfPlot is a CDF plot being drawn: x from 0 to xMax ms, a tick every
// step, y from 0 to 1.
type cdfPlot struct {
	img        *image.RGBA
	xMax, step float64
}

// px is the pixel column of v ms, values past xMax at the right edge.
func (p *cdfPlot) px(v float64) int {
	return plotLeft + int(math.Round(math.Min(v, p.xMax)/p.xMax*float64(areaW)))
}

// py is the pixel row of the fraction f.
func (p *cdfPlot) py(f float64) int { return plotTop + areaH - int(math.Round(f*float64(areaH))) }

// drawFrame draws the grid, the ticks' labels, the axes and the titles.
func (p *cdfPlot) drawFrame(title, xLabel string) {
	for v := 0.0; v <= p.xMax+p.step/2; v += p.step {
		line(p.img, p.px(v), plotTop, p.px(v), plotTop+areaH, grey)
		label := fmt.Sprintf("%g", math.Round(v*1000)/1000)
		drawText(p.img, p.px(v)-textWidth(label)/2, plotTop+areaH+10, label, black)
	}
	for f := 0.0; f <= 1.0001; f += 0.25 {
		line(p.img, plotLeft, p.py(f), plotLeft+areaW, p.py(f), grey)
		label := fmt.Sprintf("%g", f)
		drawText(p.img, plotLeft-10-textWidth(label), p.py(f)-5, label, black)
	}
	line(p.img, plotLeft, plotTop, plotLeft, plotTop+areaH, black)
	line(p.img, plotLeft, plotTop+areaH, plotLeft+areaW, plotTop+areaH, black)
	drawText(p.img, plotLeft+(areaW-textWidth(xLabel))/2, plotH-30, xLabel, black)
	drawText(p.img, 10, plotTop-30, "CDF", black)
	drawText(p.img, plotLeft+(areaW-textWidth(title))/2, 12, title, black)
}

// drawCurves draws each series as a step function, in the palette's colour
// of its index.
func (p *cdfPlot) drawCurves(series []Series) {
	for i, s := range series {
		if len(s.Samples) == 0 {
			continue
		}
		c := palette[i%len(palette)]
		sorted := append([]float64(nil), s.Samples...)
		sort.Float64s(sorted)
		prevX, prevY := p.px(sorted[0]), p.py(0)
		for j, v := range sorted {
			x, y := p.px(v), p.py(float64(j+1)/float64(len(sorted)))
			line(p.img, prevX, prevY, x, prevY, c)
			line(p.img, x, prevY, x, y, c)
			prevX, prevY = x, y
		}
	}
}

// drawLegend writes each series' label, p50 and p99 in its colour, on
// white over the plot's top right corner.
func (p *cdfPlot) drawLegend(series []Series) {
	legendX := plotLeft + areaW - 370
	fill(p.img, legendX-8, plotTop+12, plotLeft+areaW-2, plotTop+12+18*len(series)+8, white)
	for i, s := range series {
		if len(s.Samples) == 0 {
			continue
		}
		c := palette[i%len(palette)]
		ly := plotTop + 20 + i*18
		line(p.img, legendX, ly+4, legendX+24, ly+4, c)
		drawText(p.img, legendX+32, ly, fmt.Sprintf("%s  p50 %.2f  p99 %.2f", s.Label, Percentile(s.Samples, 50), Percentile(s.Samples, 99)), c)
	}
}

// fill paints the pixels from (x0, y0) up to, not including, (x1, y1).
func fill(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			img.Set(x, y, c)
		}
	}
}

func writePNG(path string, img image.Image) error {
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
