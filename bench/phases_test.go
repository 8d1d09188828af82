package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestPhases: each phase is recorded when the next one starts, the last
// when phase("") ends it, and the report's notes give them with their sum.
func TestPhases(t *testing.T) {
	var log bytes.Buffer
	r := &runner{log: &log, rep: &Report{}}
	r.phase("capture")
	time.Sleep(20 * time.Millisecond)
	r.phase("restore")
	r.phase("")
	r.phase("")
	if len(r.rep.Phases) != 2 || r.rep.Phases[0].Name != "capture" || r.rep.Phases[1].Name != "restore" ||
		r.rep.Phases[0].Seconds < 0.02 || r.rep.Phases[1].Seconds < 0 || r.rep.Phases[1].Seconds > r.rep.Phases[0].Seconds {
		t.Fatalf("phases %+v", r.rep.Phases)
	}
	if !strings.Contains(log.String(), "phase capture took 0 s\n") {
		t.Errorf("log %q", log.String())
	}
	rep := &Report{Phases: []Phase{{"setup and corpus", 12.4}, {"capture", 40}, {"restore-all", 300.6}}}
	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	want := "- time per phase (setup, settling, page-cache drops and verification included): setup and corpus 12 s, capture 40 s, restore-all 301 s; 353 s in all\n"
	if !strings.Contains(md.String(), want) {
		t.Errorf("markdown lacks %q:\n%s", want, md.String())
	}
	if phasesNote(nil) != "" {
		t.Error("a note without phases")
	}
}
