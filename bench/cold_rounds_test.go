package bench

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// TestColdRounds: every step runs once a round, each round starting one
// step further along; each tool keeps its median round's row, noted
// with the range; a failed round's row wins over the median; an error
// stops the rounds and still adds each tool's last row (a failing
// step's own failed row, when it added one).
func TestColdRounds(t *testing.T) {
	walls := map[string][]float64{"a": {3, 1, 2}, "b": {5, 9, 7}}
	tests := []struct {
		name      string
		rounds    int
		failB     int // round in which b's row fails (-1: never)
		errRound  int // round in which a's step errs (-1: never)
		wantOrder string
		wantWall  map[string]float64
		wantOK    map[string]bool
		wantErr   bool
	}{
		{"three rounds", 3, -1, -1, "abbaab", map[string]float64{"a": 2, "b": 7}, map[string]bool{"a": true, "b": true}, false},
		{"one round", 1, -1, -1, "ab", map[string]float64{"a": 3, "b": 5}, map[string]bool{"a": true, "b": true}, false},
		{"failed round", 3, 1, -1, "abbaab", map[string]float64{"a": 2, "b": 9}, map[string]bool{"a": true, "b": false}, false},
		{"error", 3, -1, 1, "abb!", map[string]float64{"a": 3, "b": 9}, map[string]bool{"a": true, "b": true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &runner{opts: RunOptions{Rounds: tt.rounds}, log: io.Discard, rep: &Report{}}
			var order []string
			round := map[string]int{}
			step := func(tool string) func() error {
				return func() error {
					i := round[tool]
					round[tool]++
					if tool == "a" && i == tt.errRound {
						order = append(order, "!")
						return errors.New("boom")
					}
					order = append(order, tool)
					row := Row{Tool: tool, Scenario: ScenarioRestoreCold, Status: StatusOK, WallSeconds: walls[tool][i], Note: "restore of user01"}
					if tool == "b" && i == tt.failB {
						row.Status = StatusFailed
					}
					r.add(row)
					return nil
				}
			}
			err := r.coldRounds([]func() error{step("a"), step("b")}, []string{"a", "b"})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if got := strings.Join(order, ""); got != tt.wantOrder {
				t.Errorf("order %q, want %q", got, tt.wantOrder)
			}
			if len(r.rep.Rows) != 2 || r.roundRows != nil {
				t.Fatalf("rows %+v (round rows left %v), want one per tool", r.rep.Rows, r.roundRows)
			}
			for _, row := range r.rep.Rows {
				if row.WallSeconds != tt.wantWall[row.Tool] || row.OK() != tt.wantOK[row.Tool] {
					t.Errorf("%s: wall %v ok %v, want %v %v", row.Tool, row.WallSeconds, row.OK(), tt.wantWall[row.Tool], tt.wantOK[row.Tool])
				}
				multi := tt.rounds > 1 && !tt.wantErr && row.OK()
				if got := strings.Contains(row.Note, "median of 3 rounds") && strings.HasPrefix(row.Note, "restore of user01; "); got != multi {
					t.Errorf("%s: note %q", row.Tool, row.Note)
				}
			}
			if !slices.Equal([]string{r.rep.Rows[0].Tool, r.rep.Rows[1].Tool}, []string{"a", "b"}) {
				t.Errorf("rows not in the tools' order: %+v", r.rep.Rows)
			}
		})
	}
}
