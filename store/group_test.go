package store

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/remote/client"
	"smp/repo"
)

func TestGroupPickRecord(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	id := func(b byte, rest byte) cas.ID {
		var x cas.ID
		x[0], x[1] = b, rest
		return x
	}
	found := func(url string, i cas.ID, at time.Time) groupAnswer {
		return groupAnswer{url: url, rec: Record{RecordInfo: repo.RecordInfo{ID: i, Record: &manifest.Record{Computer: "PC01", Created: at}}}}
	}
	failed := func(url string, err error) groupAnswer { return groupAnswer{url: url, err: err} }
	notFound := &client.Error{Status: http.StatusNotFound, Msg: "computer \"PC01\" has no record"}
	forbidden := &client.Error{Status: http.StatusForbidden, Msg: "not yours"}
	badReq := &client.Error{Status: http.StatusBadRequest, Msg: "record prefix \"ab\" is too short"}
	down := errors.New("SMP https://b: connection refused")
	refused := &client.Error{Status: http.StatusUnauthorized, Msg: "unknown token"}
	busy := &client.Error{Status: http.StatusServiceUnavailable, Msg: "busy", Capacity: true}

	tests := []struct {
		name    string
		q       recordQuery
		answers []groupAnswer
		best    int
		skipped int
		wantErr string
	}{
		{"newest wins over list order", recordQuery{computer: "PC01"},
			[]groupAnswer{found("a", id(1, 0), t0), found("b", id(2, 0), t0.Add(time.Hour)), found("c", id(3, 0), t0.Add(time.Minute))}, 1, 0, ""},
		{"tie: first in list", recordQuery{computer: "PC01"},
			[]groupAnswer{found("a", id(1, 0), t0), found("b", id(2, 0), t0)}, 0, 0, ""},
		{"absent elsewhere", recordQuery{computer: "PC01"},
			[]groupAnswer{failed("a", notFound), failed("b", forbidden), found("c", id(3, 0), t0)}, 2, 0, ""},
		{"absent everywhere", recordQuery{computer: "PC01"},
			[]groupAnswer{failed("a", notFound), failed("b", notFound)}, -1, 0, "no SMP of the group has it: computer \"PC01\" has no record"},
		{"unreachable refuses", recordQuery{computer: "PC01"},
			[]groupAnswer{found("a", id(1, 0), t0), failed("b", down)}, -1, 0, "SMP b did not answer (SMP https://b: connection refused): it may hold a newer record"},
		{"token refused refuses", recordQuery{computer: "PC01"},
			[]groupAnswer{found("a", id(1, 0), t0), failed("b", refused)}, -1, 0, "--allow-unreachable"},
		{"server busy refuses", recordQuery{computer: "PC01"},
			[]groupAnswer{failed("a", busy), found("b", id(1, 0), t0)}, -1, 0, "SMP a did not answer"},
		{"unreachable allowed", recordQuery{computer: "PC01", allowUnreachable: true},
			[]groupAnswer{failed("a", down), found("b", id(1, 0), t0), failed("c", refused)}, 1, 2, ""},
		{"all unreachable, even allowed", recordQuery{computer: "PC01", allowUnreachable: true},
			[]groupAnswer{failed("a", down), failed("b", down)}, -1, 0, "no SMP of the group answered"},
		{"prefix on one SMP", recordQuery{ref: "0300"},
			[]groupAnswer{failed("a", notFound), found("b", id(3, 0), t0)}, 1, 0, ""},
		{"same record on two SMPs", recordQuery{ref: "0300"},
			[]groupAnswer{found("a", id(3, 0), t0), found("b", id(3, 0), t0)}, 0, 0, ""},
		{"prefix ambiguous across SMPs", recordQuery{ref: "03"},
			[]groupAnswer{found("a", id(3, 1), t0), found("b", id(3, 2), t0.Add(time.Hour))}, -1, 0, "matches records on several SMPs (030100000000 on a, 030200000000 on b)"},
		{"bad question", recordQuery{ref: "ab"},
			[]groupAnswer{failed("a", badReq), failed("b", badReq)}, -1, 0, "SMP a: record prefix \"ab\" is too short"},
		{"one SMP: its error as it is", recordQuery{computer: "PC01"},
			[]groupAnswer{failed("a", down)}, -1, 0, "SMP https://b: connection refused"},
	}
	for _, tt := range tests {
		best, skipped, err := pickRecord(tt.answers, tt.q)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s: err = %v; want one line with %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || best != tt.best || len(skipped) != tt.skipped {
			t.Errorf("%s: = %d, %d skipped, %v; want %d, %d skipped", tt.name, best, len(skipped), err, tt.best, tt.skipped)
		}
	}
}
