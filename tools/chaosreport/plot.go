package main

import (
	"fmt"
	"image/color"
	"os"
	"slices"

	"github.com/eipd/eipd/tools/report"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

var (
	passColor    = color.RGBA{R: 40, G: 100, B: 190, A: 255}
	failColor    = color.RGBA{R: 210, G: 40, B: 40, A: 255}
	boxColor     = color.RGBA{R: 190, G: 210, B: 235, A: 255}
	boundColor   = color.RGBA{R: 230, G: 130, B: 30, A: 255}
	heldColor    = color.RGBA{R: 35, G: 35, B: 35, A: 255}
	noRoleColor  = color.RGBA{R: 228, G: 228, B: 228, A: 255}
	otherRoleCol = color.RGBA{R: 140, G: 110, B: 80, A: 255}
)

// roleColors are the roles a daemon reports, in legend order. Any other
// role is drawn in otherRoleCol, "" (no answer) in noRoleColor.
var roleColors = []struct {
	Role  string
	Color color.Color
}{
	{"holder", color.RGBA{R: 50, G: 165, B: 80, A: 255}},
	{"standby", color.RGBA{R: 150, G: 195, B: 235, A: 255}},
	{"unverified", color.RGBA{R: 245, G: 175, B: 50, A: 255}},
	{"draining", color.RGBA{R: 170, G: 140, B: 200, A: 255}},
	{"unhealthy", color.RGBA{R: 215, G: 85, B: 85, A: 255}},
}

func roleColor(role string) color.Color {
	if role == "" {
		return noRoleColor
	}
	for _, rc := range roleColors {
		if rc.Role == role {
			return rc.Color
		}
	}
	return otherRoleCol
}

// thickCross is draw.CrossGlyph with a line wide enough to be seen among
// the filled circles of the passed runs.
type thickCross struct{}

func (thickCross) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	c.SetLineStyle(draw.LineStyle{Color: sty.Color, Width: vg.Points(2)})
	r := sty.Radius * 0.7
	for _, d := range []vg.Length{r, -r} {
		var p vg.Path
		p.Move(vg.Point{X: pt.X - r, Y: pt.Y - d})
		p.Line(vg.Point{X: pt.X + r, Y: pt.Y + d})
		c.Stroke(p)
	}
}

// boxMin is how many measured runs a scenario needs for a box: with fewer,
// quartiles mean nothing and the runs are shown as points alone.
const boxMin = 5

// plotDowntime draws one row per scenario, first scenario at the top: each
// measured run's client-visible downtime as a point (failed runs as red
// crosses), a box of the quartiles when there are at least boxMin runs, and
// the scenario's bound as an orange bar.
func plotDowntime(ss []*scenario, path string) error {
	if _, err := report.Format(path); err != nil {
		return err
	}
	p := plot.New()
	p.Title.Text = "Client-visible downtime per scenario (longest run of failed requests after the fault)"
	p.X.Label.Text = "seconds"
	names := make([]string, len(ss))
	var pass, fail plotter.XYs
	var boundLine *plotter.Line
	drawn := false
	for i, s := range ss {
		y := float64(len(ss) - 1 - i)
		names[len(ss)-1-i] = report.OneLine(s.Title)
		var vals []float64
		for _, r := range s.Runs {
			if r.measured() {
				vals = append(vals, r.Downtime)
			}
		}
		// Spread the points of a row a little so equal values stay
		// visible; a fixed offset per run, not jitter, so the image is
		// the same for the same input.
		step := min(0.08, 0.6/float64(max(len(vals), 1)))
		k := 0
		for _, r := range s.Runs {
			if !r.measured() {
				continue
			}
			pt := plotter.XY{X: r.Downtime, Y: y + (float64(k)-float64(len(vals)-1)/2)*step}
			k++
			if r.Passed {
				pass = append(pass, pt)
			} else {
				fail = append(fail, pt)
			}
		}
		if len(vals) >= boxMin {
			bp, err := plotter.NewBoxPlot(vg.Points(14), y, plotter.Values(vals))
			if err != nil {
				return fmt.Errorf("box of %s: %w", s.Name, err)
			}
			bp.Horizontal = true
			bp.FillColor = boxColor
			bp.GlyphStyle.Radius = 0 // outliers are drawn as the runs' points already
			p.Add(bp)
		}
		drawn = drawn || len(vals) > 0
		if b := s.bound(); b != nil {
			l, err := plotter.NewLine(plotter.XYs{{X: *b, Y: y - 0.4}, {X: *b, Y: y + 0.4}})
			if err != nil {
				return err
			}
			l.Color = boundColor
			l.Width = vg.Points(2.5)
			p.Add(l)
			boundLine = l
		}
	}
	if !drawn {
		return fmt.Errorf("no scenario has a measured run to plot")
	}
	for _, set := range []struct {
		pts   plotter.XYs
		col   color.Color
		glyph draw.GlyphDrawer
		r     vg.Length
		label string
	}{{pass, passColor, draw.CircleGlyph{}, 3, "run, passed"}, {fail, failColor, thickCross{}, 5, "run, failed"}} {
		if len(set.pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(set.pts)
		if err != nil {
			return err
		}
		sc.Color = set.col
		sc.Shape = set.glyph
		sc.Radius = vg.Points(float64(set.r))
		p.Add(sc)
		p.Legend.Add(set.label, sc)
	}
	if boundLine != nil {
		p.Legend.Add("the scenario's bound", boundLine)
	}
	p.Legend.Add(fmt.Sprintf("quartiles, whiskers 1.5 IQR (≥ %d runs)", boxMin), report.Swatch{Color: boxColor})
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.NominalY(names...)
	p.Add(plotter.NewGrid())
	p.X.Min = 0
	// Room at the right for the legend, at the left for zero downtime.
	p.X.Max *= 1.35
	p.X.Min = -p.X.Max / 100
	if p.X.Max <= 0 {
		p.X.Max = 1
	}
	h := vg.Length(len(ss))*vg.Points(22) + 1.6*vg.Inch
	return p.Save(10*vg.Inch, h, path)
}

// bound is the largest bound its runs give, or nil when none says one.
func (s *scenario) bound() *float64 {
	var b *float64
	for _, r := range s.Runs {
		if r.DowntimeBound != nil && (b == nil || *r.DowntimeBound > *b) {
			b = r.DowntimeBound
		}
	}
	return b
}

// timelineRun picks the run the timeline plot shows, the same one for the
// same input: the first passed run of haproxy-killed, else the first
// passed run with a move, else the first run with a move, in each case
// only among runs that carry a timeline.
func timelineRun(ss []*scenario) *result {
	picks := []func(s *scenario, r *result) bool{
		func(s *scenario, r *result) bool { return s.Name == timelineScenario && r.Passed },
		func(s *scenario, r *result) bool { return r.Passed && r.Moves > 0 },
		func(s *scenario, r *result) bool { return r.Moves > 0 },
	}
	for _, pick := range picks {
		for _, s := range ss {
			for i := range s.Runs {
				if r := &s.Runs[i]; r.Timeline.has() && pick(s, r) {
					return r
				}
			}
		}
	}
	return nil
}

const timelineScenario = "haproxy-killed"

// instances are the rows of the timeline: every instance named in the
// roles or the association, the first holder first, then by ID.
func (t *timeline) instances() []string {
	var ids []string
	for id := range t.Roles {
		ids = append(ids, id)
	}
	for _, h := range t.Holder {
		if h != "" && !slices.Contains(ids, h) {
			ids = append(ids, h)
		}
	}
	slices.Sort(ids)
	for _, h := range t.Holder {
		if h != "" {
			i := slices.Index(ids, h)
			ids = append([]string{h}, slices.Delete(ids, i, i+1)...)
			break
		}
	}
	return ids
}

// band is a run of equal values in a per-bucket series: buckets [From, To).
type band struct {
	From, To int
	Value    string
}

func bands(series []string) []band {
	var out []band
	for i, v := range series {
		if n := len(out); n > 0 && out[n-1].Value == v {
			out[n-1].To = i + 1
			continue
		}
		out = append(out, band{From: i, To: i + 1, Value: v})
	}
	return out
}

func rect(x0, x1, y0, y1 float64, c color.Color) (*plotter.Polygon, error) {
	pg, err := plotter.NewPolygon(plotter.XYs{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
	if err != nil {
		return nil, err
	}
	pg.Color = c
	pg.LineStyle.Width = 0
	return pg, nil
}

// plotTimeline draws one run: above, the share of client requests that
// succeeded per bucket; below, one row per instance with the role its
// daemon reported (lower band) and, in black, when the EIP was associated
// with it (upper band). Time is in seconds from the fault (from the start of
// the timeline when the run has no fault time), the fault a dashed red line.
func plotTimeline(r *result, path string) error {
	fm, err := report.Format(path)
	if err != nil {
		return err
	}
	t := &r.Timeline
	bucket := float64(t.BucketMS) / 1000
	origin := t.StartTime
	xLabel := "seconds from the start of the run"
	if !r.FaultTime.IsZero() {
		origin = r.FaultTime
		xLabel = "seconds from the fault"
	}
	x0 := t.StartTime.Sub(origin).Seconds()
	x := func(i int) float64 { return x0 + float64(i)*bucket }
	n := t.buckets()

	client := plot.New()
	client.Title.Text = fmt.Sprintf("%s, run %d: what a client and the daemons saw (buckets of %d ms)", report.OneLine(r.Title), r.Run, t.BucketMS)
	client.Y.Label.Text = "requests that succeeded"
	client.Y.Min, client.Y.Max = 0, 1.05
	client.Y.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0 %"}, {Value: 0.5, Label: "50 %"}, {Value: 1, Label: "100 %"}})
	var okLine *plotter.Line
	var seg plotter.XYs
	flush := func() error {
		if len(seg) == 0 {
			return nil
		}
		l, err := plotter.NewLine(seg)
		if err != nil {
			return err
		}
		l.Color = passColor
		l.Width = vg.Points(1.5)
		client.Add(l)
		okLine, seg = l, nil
		return nil
	}
	for i, v := range t.ClientOK {
		if v < 0 { // no request in this bucket: a gap, not a failure
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		seg = append(seg, plotter.XY{X: x(i), Y: v}, plotter.XY{X: x(i + 1), Y: v})
	}
	if err := flush(); err != nil {
		return err
	}

	rows := plot.New()
	rows.X.Label.Text = xLabel
	ids := t.instances()
	names := make([]string, len(ids))
	for k, id := range ids {
		y := float64(len(ids) - 1 - k)
		names[len(ids)-1-k] = id
		for _, b := range bands(t.Roles[id]) {
			pg, err := rect(x(b.From), x(b.To), y-0.38, y+0.02, roleColor(b.Value))
			if err != nil {
				return err
			}
			rows.Add(pg)
		}
		held := make([]string, len(t.Holder))
		for i, h := range t.Holder {
			if h == id {
				held[i] = "held"
			}
		}
		for _, b := range bands(held) {
			if b.Value == "" {
				continue
			}
			pg, err := rect(x(b.From), x(b.To), y+0.1, y+0.38, heldColor)
			if err != nil {
				return err
			}
			rows.Add(pg)
		}
	}
	if len(ids) == 0 {
		return fmt.Errorf("%s: the timeline names no instance", r.Source)
	}
	rows.NominalY(names...)
	rows.Y.Min, rows.Y.Max = -0.5, float64(len(ids))-0.5

	// The same time axis for both, and the fault marked on both.
	xmin, xmax := x(0), x(n)
	var fault *plotter.Line
	for _, p := range []*plot.Plot{client, rows} {
		p.X.Min, p.X.Max = xmin, xmax
		p.Add(plotter.NewGrid())
		if !r.FaultTime.IsZero() {
			l, err := report.DashedLine(plotter.XYs{{X: 0, Y: p.Y.Min}, {X: 0, Y: p.Y.Max}}, failColor)
			if err != nil {
				return err
			}
			p.Add(l)
			fault = l
		}
	}

	legend := plot.NewLegend()
	legend.Top, legend.Left = true, true
	legend.TextStyle.Font.Size = vg.Points(10)
	if okLine != nil {
		legend.Add("client requests that succeeded", okLine)
	}
	if fault != nil {
		legend.Add("the fault", fault)
	}
	legend.Add("EIP associated here", report.Swatch{Color: heldColor})
	for _, rc := range roleColors {
		legend.Add("role: "+rc.Role, report.Swatch{Color: rc.Color})
	}
	legend.Add("role: other", report.Swatch{Color: otherRoleCol})
	legend.Add("no answer", report.Swatch{Color: noRoleColor})

	w, h := 11*vg.Inch, 3*vg.Inch+vg.Length(len(ids))*vg.Points(40)
	cw, err := draw.NewFormattedCanvas(w, h, fm)
	if err != nil {
		return err
	}
	dc := draw.New(cw)
	legendWidth := 2.2 * vg.Inch
	left := draw.Crop(dc, 0, -legendWidth, 0, 0)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 2 * vg.Millimeter, PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadLeft: vg.Millimeter}
	plots := [][]*plot.Plot{{client}, {rows}}
	canvases := plot.Align(plots, tiles, left)
	for j := range plots {
		plots[j][0].Draw(canvases[j][0])
	}
	legendArea := draw.Crop(dc, w-legendWidth, 0, 0, -vg.Points(30))
	legend.Draw(legendArea)

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := cw.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
