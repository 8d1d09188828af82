package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
)

// svgDoc is what a test reads back from a chart.
type svgDoc struct {
	bars  []svgRect // <rect class="bar">
	texts []string  // character data of every <text>, unescaped
	na    int       // "n/a" labels
}

type svgRect struct {
	x, y, w, h float64
	fill       string
}

// parseSVG checks that s is well-formed XML with an <svg> root and returns
// its bars and texts.
func parseSVG(t *testing.T, s string) svgDoc {
	t.Helper()
	for _, bad := range []string{"NaN", "Inf", "%!"} {
		if strings.Contains(s, bad) {
			t.Errorf("SVG contains %q", bad)
		}
	}
	dec := xml.NewDecoder(strings.NewReader(s))
	var doc svgDoc
	var stack []string
	var inText bool
	var text strings.Builder
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, s)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
				if el.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q", el.Name.Space)
				}
			}
			stack = append(stack, el.Name.Local)
			attr := map[string]string{}
			for _, a := range el.Attr {
				attr[a.Name.Local] = a.Value
			}
			switch el.Name.Local {
			case "rect":
				if attr["class"] == "bar" {
					f := func(k string) float64 {
						v, err := strconv.ParseFloat(attr[k], 64)
						if err != nil {
							t.Errorf("bar %s=%q: %v", k, attr[k], err)
						}
						return v
					}
					doc.bars = append(doc.bars, svgRect{f("x"), f("y"), f("width"), f("height"), attr["fill"]})
				}
			case "text":
				inText = true
				text.Reset()
				if attr["class"] == "na" {
					doc.na++
				}
			}
		case xml.CharData:
			if inText {
				text.Write(el)
			}
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1] != el.Name.Local {
				t.Fatalf("unbalanced </%s>", el.Name.Local)
			}
			stack = stack[:len(stack)-1]
			if el.Name.Local == "text" {
				inText = false
				doc.texts = append(doc.texts, text.String())
			}
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	if len(stack) != 0 {
		t.Fatalf("unclosed elements %v", stack)
	}
	return doc
}

func (d svgDoc) hasText(s string) bool {
	for _, t := range d.texts {
		if t == s {
			return true
		}
	}
	return false
}

func TestWriteSVG(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name      string
		title     string
		panels    []Panel
		wantBars  int
		wantNA    int
		wantTexts []string
	}{
		{
			name:  "grouped bars",
			title: "smp bench: 8 users, 2 GiB",
			panels: []Panel{{
				Title: "Throughput", YLabel: "MB/s",
				Groups: []string{"org capture", "restore 1 user"},
				Series: []string{"smp", "tar|zstd", "restic"},
				Values: [][]float64{{312, 120, 45.5}, {800, 250, 60}},
			}},
			wantBars:  6,
			wantTexts: []string{"smp bench: 8 users, 2 GiB", "Throughput", "MB/s", "org capture", "restore 1 user", "smp", "tar|zstd", "restic", "312", "120", "45.5", "800"},
		},
		{
			name:  "missing and not applicable",
			title: "t",
			panels: []Panel{{
				Title: "Stored", YLabel: "MiB",
				Groups: []string{"capture", "hard-link capture"},
				Series: []string{"smp", "cp -a", "cp -al"},
				Values: [][]float64{{1200, 2048, NotApplicable}, {nan, NotApplicable, 0.3}},
			}},
			wantBars:  3,
			wantNA:    1,
			wantTexts: []string{"1,200", "2,048", "0.3", "n/a", "cp -al"},
		},
		{
			name:  "log scale",
			title: "t",
			panels: []Panel{{
				Title: "Throughput", YLabel: "MB/s", Log: true,
				Groups: []string{"a", "b"},
				Series: []string{"x", "y"},
				Values: [][]float64{{5, 3000}, {0, 40}},
			}},
			wantBars:  3,
			wantNA:    1, // 0 cannot be drawn on a log axis
			wantTexts: []string{"Throughput (log scale)", "1", "10", "100", "1,000", "10,000", "3,000"},
		},
		{
			name:  "markup in names is escaped",
			title: `<b>"quoted" & more</b>`,
			panels: []Panel{{
				Title: "a<b", YLabel: "c&d",
				Groups: []string{"</text>"},
				Series: []string{"x&y", "]]>"},
				Values: [][]float64{{1, 2}},
			}},
			wantBars:  2,
			wantTexts: []string{`<b>"quoted" & more</b>`, "a<b", "c&d", "</text>", "x&y", "]]>"},
		},
		{
			name:  "empty and zero panels",
			title: "nothing measured",
			panels: []Panel{
				{Title: "empty"},
				{Title: "zeros", Groups: []string{"g"}, Series: []string{"s"}, Values: [][]float64{{0}}},
				{Title: "short values", Groups: []string{"g", "h"}, Series: []string{"s"}, Values: [][]float64{{1}}},
			},
			wantBars:  2, // a zero bar is drawn with zero height; "h" has no entry
			wantTexts: []string{"nothing measured", "empty", "zeros", "0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteSVG(&buf, tc.title, "footer: 2 cores", tc.panels); err != nil {
				t.Fatal(err)
			}
			doc := parseSVG(t, buf.String())
			if len(doc.bars) != tc.wantBars {
				t.Errorf("%d bars, want %d", len(doc.bars), tc.wantBars)
			}
			if doc.na != tc.wantNA {
				t.Errorf("%d n/a labels, want %d", doc.na, tc.wantNA)
			}
			for _, want := range tc.wantTexts {
				if !doc.hasText(want) {
					t.Errorf("no text %q in %q", want, doc.texts)
				}
			}
			if !doc.hasText("footer: 2 cores") {
				t.Errorf("footer missing")
			}
			for _, b := range doc.bars {
				if b.w <= 0 || b.h < 0 || b.x < 0 || b.y < 0 || b.x+b.w > chartW {
					t.Errorf("bar out of the chart: %+v", b)
				}
			}
		})
	}
}

// TestWriteSVGProportions checks that linear bars are proportional to their
// values and that a series keeps its colour across panels.
func TestWriteSVGProportions(t *testing.T) {
	p1 := Panel{Groups: []string{"g"}, Series: []string{"a", "b"}, Values: [][]float64{{100, 400}}}
	p2 := Panel{Groups: []string{"g"}, Series: []string{"b", "a"}, Values: [][]float64{{1, 1}}}
	var buf bytes.Buffer
	if err := WriteSVG(&buf, "t", "", []Panel{p1, p2}); err != nil {
		t.Fatal(err)
	}
	doc := parseSVG(t, buf.String())
	if len(doc.bars) != 4 {
		t.Fatalf("%d bars", len(doc.bars))
	}
	a, b := doc.bars[0], doc.bars[1]
	if r := b.h / a.h; math.Abs(r-4) > 0.05 {
		t.Errorf("bar heights %.1f and %.1f: ratio %.2f, want 4", a.h, b.h, r)
	}
	if math.Abs((a.y+a.h)-(b.y+b.h)) > 0.2 {
		t.Errorf("bars do not share a baseline: %+v %+v", a, b)
	}
	if a.fill == b.fill {
		t.Errorf("series share colour %s", a.fill)
	}
	if doc.bars[2].fill != b.fill || doc.bars[3].fill != a.fill {
		t.Errorf("colours change between panels: %+v", doc.bars)
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{0.3, 0.5}, {1, 1}, {1.2, 2}, {2.2, 2.5}, {3, 5}, {7, 10}, {180, 200}, {0, 1},
	} {
		if got := niceStep(tc.in); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("niceStep(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestReportSVG(t *testing.T) {
	rep := syntheticReport()
	panels := rep.Panels()
	if len(panels) != 2 {
		t.Fatalf("%d panels, want 2", len(panels))
	}
	tp, sp := panels[0], panels[1]
	if got := strings.Join(tp.Groups, ","); got != "org capture,incremental,restore 1 user,hard-link capture,smp serve" {
		t.Errorf("throughput groups %s", got)
	}
	if got := strings.Join(tp.Series, ","); got != "smp,restic,tar|zstd,cp -al" {
		t.Errorf("throughput series %s", got)
	}
	if got := strings.Join(sp.Groups, ","); got != "org capture,incremental (added),hard-link capture" {
		t.Errorf("stored groups %s", got)
	}
	var buf bytes.Buffer
	if err := rep.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	doc := parseSVG(t, buf.String())
	// Throughput: smp capture/restore, restic capture/restore, tar
	// capture/restore, cp -al hardlink; stored: smp, restic, tar capture and
	// cp -al hardlink.
	if len(doc.bars) != 11 {
		t.Errorf("%d bars, want 11", len(doc.bars))
	}
	for _, want := range []string{"smp", "restic", "tar|zstd", "cp -al", "300", "2,700"} {
		if !doc.hasText(want) {
			t.Errorf("no text %q", want)
		}
	}
	// Not available and skipped rows show as n/a: smp hardlink, smp serve
	// and the skipped incremental rows in both panels.
	if doc.na == 0 {
		t.Errorf("no n/a labels")
	}
}
