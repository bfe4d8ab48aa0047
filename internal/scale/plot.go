package scale

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Point is one (x, y) sample.
type Point struct{ X, Y float64 }

// Series is one line of a plot.
type Series struct {
	Name   string
	Points []Point
}

// Plot is a line plot with linear axes from zero, rendered as a
// self-contained SVG (no dependency: a few lines of XML).
type Plot struct {
	Title, XLabel, YLabel string
	Series                []Series
}

// Plot geometry, in SVG user units.
const (
	plotW, plotH                  = 720, 420
	marginL, marginR, marginT, mB = 70, 250, 40, 50
)

var plotColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

// SVG renders the plot.
func (p Plot) SVG() string {
	maxX, maxY := 0.0, 0.0
	for _, s := range p.Series {
		for _, pt := range s.Points {
			maxX, maxY = math.Max(maxX, pt.X), math.Max(maxY, pt.Y)
		}
	}
	maxX, maxY = niceCeil(maxX), niceCeil(maxY)
	iw, ih := float64(plotW-marginL-marginR), float64(plotH-marginT-mB)
	sx := func(x float64) float64 { return marginL + x/maxX*iw }
	sy := func(y float64) float64 { return marginT + ih - y/maxY*ih }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH, plotW, plotH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="15">%s</text>`+"\n", marginL, html.EscapeString(p.Title))
	for i := 0; i <= 5; i++ {
		x, y := maxX*float64(i)/5, maxY*float64(i)/5
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", sx(x), marginT, sx(x), sy(0))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", marginL, sy(y), sx(maxX), sy(y))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", sx(x), sy(0)+16, tick(x))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", marginL-6, sy(y)+4, tick(y))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", marginL, sy(0), sx(maxX), sy(0))
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%.1f" stroke="black"/>`+"\n", marginL, marginT, marginL, sy(0))
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", sx(maxX/2), plotH-10, html.EscapeString(p.XLabel))
	fmt.Fprintf(&b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">%s</text>`+"\n", sy(maxY/2), sy(maxY/2), html.EscapeString(p.YLabel))
	for i, s := range p.Series {
		c := plotColors[i%len(plotColors)]
		pts := make([]string, len(s.Points))
		for j, pt := range s.Points {
			pts[j] = fmt.Sprintf("%.1f,%.1f", sx(pt.X), sy(pt.Y))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		for _, pt := range s.Points {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", sx(pt.X), sy(pt.Y), c)
		}
		ly := marginT + 10 + 20*i
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", plotW-marginR+15, ly, plotW-marginR+35, ly, c)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", plotW-marginR+40, ly+4, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for v <= 0).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

func tick(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2g", v)
}
