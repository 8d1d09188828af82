package bench

import (
	"fmt"
	"strings"
	"time"
)

// Phase is how long one part of Run took in all, its setup, settling,
// dropping of the page cache and verification included: what a run of
// this size costs, to plan a larger one (the rows time only the tools).
type Phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// phaseClock is the phase under way.
type phaseClock struct {
	name  string
	start time.Time
}

// phase ends the phase under way, if any, records it and starts the
// phase name ("": none).
func (r *runner) phase(name string) {
	now := time.Now()
	if r.cur.name != "" {
		p := Phase{Name: r.cur.name, Seconds: now.Sub(r.cur.start).Seconds()}
		r.rep.Phases = append(r.rep.Phases, p)
		r.logf("phase %s took %.0f s", p.Name, p.Seconds)
	}
	r.cur = phaseClock{name: name, start: now}
}

// phasesNote is "setup and corpus 12 s, capture 40 s, ...; 300 s in
// all", or "" without phases.
func phasesNote(ps []Phase) string {
	if len(ps) == 0 {
		return ""
	}
	parts := make([]string, len(ps))
	var total float64
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%s %.0f s", p.Name, p.Seconds)
		total += p.Seconds
	}
	return fmt.Sprintf("time per phase (setup, settling, page-cache drops and verification included): %s; %.0f s in all", strings.Join(parts, ", "), total)
}
