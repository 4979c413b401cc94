package lab

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// The chart: requests per second over the run, one line per region that
// answered, failures as red bars below the axis, scenarios as shaded
// bands with their names, the lab's actions as ticks. Drawn with the
// standard library's image packages and x/image's fixed font: a line
// chart needs no plotting library.
const (
	chartW, chartH = 1600, 640
	padL, padR     = 70, 20
	padT, padB     = 70, 110
	failBand       = 60 // pixels below the axis for failures
)

var (
	chartBG     = color.RGBA{255, 255, 255, 255}
	chartAxis   = color.RGBA{60, 60, 60, 255}
	chartGrid   = color.RGBA{225, 225, 225, 255}
	chartBand   = [2]color.RGBA{{244, 246, 250, 255}, {232, 237, 245, 255}}
	chartFail   = color.RGBA{220, 30, 30, 255}
	chartEvent  = color.RGBA{120, 120, 120, 255}
	chartColors = []color.RGBA{{31, 119, 180, 255}, {44, 160, 44, 255}, {255, 127, 14, 255}, {148, 103, 189, 255}}
)

// WritePNG draws the timeline chart.
func (r *Report) WritePNG(out io.Writer) error {
	img := image.NewRGBA(image.Rect(0, 0, chartW, chartH))
	draw.Draw(img, img.Bounds(), image.NewUniform(chartBG), image.Point{}, draw.Src)
	// The chart starts with the traffic, after the world was built.
	origin := r.Took
	if len(r.Spans) > 0 {
		origin = r.Spans[0].From
	}
	for _, rec := range r.Records {
		origin = min(origin, rec.Start)
	}
	first := int(origin / time.Second)
	secsTotal := max(int(math.Ceil(r.Took.Seconds()))-first, 1)
	// Requests per second answered by each region, and failures.
	per := make([][]int, len(r.Regions))
	for i := range per {
		per[i] = make([]int, secsTotal+1)
	}
	fails := make([]int, secsTotal+1)
	for _, rec := range r.Records {
		s := int(rec.End/time.Second) - first
		if s < 0 || s > secsTotal {
			continue
		}
		if !rec.ok() {
			fails[s]++
		} else if rec.Region >= 0 && rec.Region < len(per) {
			per[rec.Region][s]++
		}
	}
	top := 1
	for _, row := range per {
		for _, v := range row {
			top = max(top, v)
		}
	}
	top = niceCeil(top)
	failTop := 1
	for _, v := range fails {
		failTop = max(failTop, v)
	}
	plotW := chartW - padL - padR
	plotH := chartH - padT - padB - failBand
	axisY := padT + plotH
	x := func(t float64) int { return padL + int(t/float64(secsTotal)*float64(plotW)) }
	at := func(d time.Duration) int { return x(d.Seconds() - float64(first)) }
	y := func(v float64) int { return axisY - int(v/float64(top)*float64(plotH)) }

	// Scenario bands, names and events.
	for i, sp := range r.Spans {
		x0, x1 := at(sp.From), at(sp.To)
		if sp.To == 0 {
			x1 = x(float64(secsTotal))
		}
		fill(img, image.Rect(x0, padT, x1, axisY+failBand), chartBand[i%2])
		lx := min(x0+3, chartW-padR-7*len(sp.Name)) // 7 pixels a character: the name stays in the picture
		label(img, lx, padT-8-14*(i%3), sp.Name, chartAxis)
		for _, e := range sp.Events {
			ex := at(e.At)
			fill(img, image.Rect(ex, padT, ex+1, padT+10), chartEvent)
			fill(img, image.Rect(ex, axisY-4, ex+1, axisY+4), chartEvent)
		}
	}
	// Grid and axes.
	ticks := 4
	if top%5 == 0 || top < 4 {
		ticks = min(top, 5)
	}
	for i := 0; i <= ticks; i++ {
		v := float64(top) * float64(i) / float64(ticks)
		gy := y(v)
		fill(img, image.Rect(padL, gy, padL+plotW, gy+1), chartGrid)
		label(img, 8, gy+4, fmt.Sprintf("%4.0f/s", v), chartAxis)
	}
	step := niceCeil(max(secsTotal/15, 1))
	for s := 0; s <= secsTotal; s += step {
		fill(img, image.Rect(x(float64(s)), axisY, x(float64(s))+1, axisY+failBand+6), chartGrid)
		label(img, x(float64(s))-8, axisY+failBand+20, fmt.Sprintf("%ds", s+first), chartAxis)
	}
	fill(img, image.Rect(padL, axisY, padL+plotW, axisY+1), chartAxis)
	fill(img, image.Rect(padL, padT, padL+1, axisY+failBand), chartAxis)
	label(img, 4, axisY+18, "failed", chartFail)
	label(img, 4, axisY+32, fmt.Sprintf("max %d/s", failTop), chartFail)
	// Failures: bars down from the axis.
	bw := max(plotW/secsTotal, 1)
	for s, v := range fails {
		if v == 0 {
			continue
		}
		h := max(int(float64(v)/float64(failTop)*float64(failBand-6)), 2)
		fill(img, image.Rect(x(float64(s)), axisY+2, x(float64(s))+bw, axisY+2+h), chartFail)
	}
	// One line per region.
	for k, row := range per {
		c := chartColors[k%len(chartColors)]
		for s := 1; s < len(row); s++ {
			line(img, x(float64(s-1)+0.5), y(float64(row[s-1])), x(float64(s)+0.5), y(float64(row[s])), c)
		}
	}
	// Legend.
	lx := padL
	for k, reg := range r.Regions {
		c := chartColors[k%len(chartColors)]
		fill(img, image.Rect(lx, chartH-30, lx+24, chartH-27), c)
		label(img, lx+30, chartH-24, "answered by "+reg, chartAxis)
		lx += 220
	}
	fill(img, image.Rect(lx, chartH-34, lx+10, chartH-24), chartFail)
	label(img, lx+16, chartH-24, "failed requests", chartAxis)
	label(img, chartW-padR-430, chartH-24, fmt.Sprintf("requests per second, %s, edge %s", r.Date.UTC().Format("2006-01-02 15:04"), orDev(r.Version)), chartAxis)
	label(img, padL+plotW/2-100, axisY+failBand+40, "seconds since the lab started", chartAxis)
	return png.Encode(out, img)
}

func fill(img *image.RGBA, rect image.Rectangle, c color.RGBA) {
	draw.Draw(img, rect.Intersect(img.Bounds()), image.NewUniform(c), image.Point{}, draw.Src)
}

func label(img *image.RGBA, x, y int, s string, c color.RGBA) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// line draws a 2-pixel line (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		img.SetRGBA(x0, y0+1, c)
		img.SetRGBA(x0+1, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
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

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v int) int {
	p := 1
	for {
		for _, m := range []int{1, 2, 5} {
			if m*p >= v {
				return m * p
			}
		}
		p *= 10
	}
}
