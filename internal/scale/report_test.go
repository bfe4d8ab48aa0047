package scale

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := Summarize(ds)
	if d.N != 100 || d.P50 != 51*time.Millisecond || d.P99 != 99*time.Millisecond || d.Max != 100*time.Millisecond {
		t.Errorf("Summarize = %+v", d)
	}
	if (Summarize(nil) != Dist{}) {
		t.Error("Summarize(nil) is not zero")
	}
}

// The plots are well-formed XML with one polyline per series.
func TestPlotSVG(t *testing.T) {
	p := Plot{Title: "a < b", XLabel: "x", YLabel: "y", Series: []Series{
		{Name: "one", Points: []Point{{100, 0.5}, {300, 1.5}, {1000, 7}}},
		{Name: "two & three", Points: []Point{{100, 1}}},
	}}
	dec := xml.NewDecoder(strings.NewReader(p.SVG()))
	lines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG does not parse: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 2 {
		t.Errorf("%d polylines, want 2", lines)
	}
}

func TestTablesTargets(t *testing.T) {
	r := &Result{N: 1000, ColdStart: 40 * time.Second, NewBlock: Dist{N: 1, P99: 500 * time.Millisecond},
		Base: ProcStats{RSS: 30 << 20}, Idle: ProcStats{RSS: 30<<20 + 1000*(4<<20)}, ChurnPeakRSS: 30<<20 + 1000*(5<<20)}
	out := Tables([]*Result{r})
	for _, want := range []string{"| new block → every node's routes, p99 ≤ 1 s | 500 ms | met |",
		"| cold start of all agents converged ≤ 30 s | 40.0 s | missed |",
		"(idle share) | 4.0 MB | met |"} {
		if !strings.Contains(out, want) {
			t.Errorf("tables lack %q:\n%s", want, out)
		}
	}
}
