package main

import (
	"fmt"
	"image/color"

	"github.com/eipd/eipd/tools/report"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// faultKind is one box group of the failover plot.
type faultKind struct {
	Label  string
	Bench  string
	Target float64 // p99 target in seconds; 0: none
}

var faultKinds = []faultKind{
	{"HAProxy killed", "FailoverHAProxyDeath", 1.5},
	{"HAProxy killed,\nEC2 +300 ms", "FailoverHAProxyDeathSlowAPI", 2.5},
	{"instance\nstopped", "FailoverInstanceStopped", 5},
	{"instance\nterminated", "FailoverInstanceTerminated", 5},
	{"instance hung\n(SIGSTOP)", "FailoverInstanceDeath", 12},
	{"HAProxy killed\non the coordinator", "FailoverHAProxyDeathCoordinator", 1.5},
	{"coordinator hung\n(SIGSTOP)", "FailoverHungCoordinator", 0},
}

var (
	beforeColor = color.RGBA{R: 190, G: 190, B: 190, A: 255}
	afterColor  = color.RGBA{R: 70, G: 130, B: 200, A: 255}
	targetColor = color.RGBA{R: 200, G: 40, B: 40, A: 255}
)

// plotFailover draws, per fault kind, the distribution of the trials
// before and after, and the p99 target, to a PNG file.
func plotFailover(before, after *runOutput, path string) error {
	p := plot.New()
	p.Title.Text = "Failover time per fault kind (trials: box = quartiles, whiskers = 1.5 IQR)"
	p.Y.Label.Text = "seconds from the fault to the EIP associated elsewhere"
	p.Y.Min = 0
	w := vg.Points(22)
	var names []string
	drawn := false
	for i, k := range faultKinds {
		names = append(names, k.Label)
		x := float64(i)
		for _, side := range []struct {
			r   *runOutput
			dx  float64
			col color.Color
		}{{before, -0.18, beforeColor}, {after, 0.18, afterColor}} {
			res := side.r.get(k.Bench)
			if res == nil {
				continue
			}
			vals := res.trials()
			if len(vals) == 0 {
				continue
			}
			bp, err := plotter.NewBoxPlot(w, x+side.dx, plotter.Values(vals))
			if err != nil {
				return fmt.Errorf("box plot of %s: %w", k.Bench, err)
			}
			bp.FillColor = side.col
			p.Add(bp)
			drawn = true
		}
		if k.Target == 0 {
			continue
		}
		line, err := report.DashedLine(plotter.XYs{{X: x - 0.42, Y: k.Target}, {X: x + 0.42, Y: k.Target}}, targetColor)
		if err != nil {
			return err
		}
		p.Add(line)
		if i == 0 {
			p.Legend.Add("before", report.Swatch{Color: beforeColor})
			p.Legend.Add("after", report.Swatch{Color: afterColor})
			p.Legend.Add("p99 target", line)
		}
	}
	if !drawn {
		return fmt.Errorf("no failover trials in either run")
	}
	p.Y.Max *= 1.08 // room above the highest target line
	p.NominalX(names...)
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return p.Save(10*vg.Inch, 5*vg.Inch, path)
}
