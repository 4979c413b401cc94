package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// serverColors are the servers' colours in every panel.
var serverColors = map[string]color.Color{
	nameEdge:    color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	nameEdgeLog: color.RGBA{R: 0x9e, G: 0xc9, B: 0xe8, A: 0xff},
	nameNginx:   color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	nameVarnish: color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

// pctX maps a percentile to the chart's x axis: -log10(1 - p/100), so
// that 90, 99, 99.9 and 99.99 are evenly spaced, as in HdrHistogram plots.
func pctX(p float64) float64 {
	if p >= 100 {
		return 5
	}
	return math.Min(5, -math.Log10(1-p/100))
}

// writeChart draws one panel per latency scenario: each server's latency
// at each percentile (the hit scenarios' median run by requests/s; every
// stampede request of every run).
func writeChart(r *results, path string) error {
	var panels []*plot.Plot
	for _, sc := range hitScenarios {
		series := map[string][]pctValue{}
		for _, name := range r.Servers {
			ms := r.Hits[sc.id][name]
			if len(ms) == 0 {
				continue
			}
			series[name] = medianRun(ms).Latency
		}
		if len(series) > 0 {
			p, err := latencyPanel(sc.id+": "+sc.short+" (median run)", r.Servers, series)
			if err != nil {
				return err
			}
			panels = append(panels, p)
		}
	}
	for _, sc := range stampedeScenarios {
		series := map[string][]pctValue{}
		for _, name := range r.Servers {
			var all []float64
			for _, s := range r.Stampede[sc.id][name] {
				for _, l := range s.Latencies {
					all = append(all, l.Seconds())
				}
			}
			if len(all) == 0 {
				continue
			}
			slices.Sort(all)
			var pts []pctValue
			for i, v := range all {
				p := 100 * float64(i+1) / float64(len(all))
				pts = append(pts, pctValue{P: p, Lat: secs(v)})
			}
			series[name] = pts
		}
		if len(series) == 0 {
			continue
		}
		p, err := latencyPanel(fmt.Sprintf("%s: %d at once, every run", sc.id, r.Meta.Config.stampedeN), r.Servers, series)
		if err != nil {
			return err
		}
		panels = append(panels, p)
	}
	if len(panels) == 0 {
		return fmt.Errorf("no latency to draw")
	}
	cols := 2
	rows := (len(panels) + cols - 1) / cols
	const w, h = 6 * vg.Inch, 4 * vg.Inch
	img := vgimg.New(w*vg.Length(cols), h*vg.Length(rows))
	dc := draw.New(img)
	t := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	for i, p := range panels {
		p.Draw(t.At(dc, i%cols, i/cols))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// medianRun is the run with the median requests/s.
func medianRun(ms []*measurement) *measurement {
	s := slices.Clone(ms)
	slices.SortFunc(s, func(a, b *measurement) int {
		switch {
		case a.rps() < b.rps():
			return -1
		case a.rps() > b.rps():
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

func latencyPanel(title string, servers []string, series map[string][]pctValue) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.X.Min, p.X.Max = 0, 5
	p.X.Tick.Marker = plot.ConstantTicks([]plot.Tick{
		{Value: 0, Label: "0"}, {Value: 1, Label: "90"}, {Value: 2, Label: "99"},
		{Value: 3, Label: "99.9"}, {Value: 4, Label: "99.99"}, {Value: 5, Label: "max"},
	})
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	for _, name := range servers {
		pts := series[name]
		if len(pts) == 0 {
			continue
		}
		var xys plotter.XYs
		for _, v := range pts {
			ms := math.Max(float64(v.Lat)/1e6, 0.001)
			xys = append(xys, plotter.XY{X: pctX(v.P), Y: ms})
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		line.Color = serverColors[name]
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(name, line)
	}
	return p, nil
}
