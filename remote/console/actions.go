package console

import (
	"fmt"
	"net/http"
	"time"

	"smp/cas"
	"smp/remote/access"
	"smp/repo"
)

// Op is a console action.
type Op string

// The console's actions: each is shown on a confirmation page first
// (GET /confirm) and done by POST /action with the session's CSRF token.
const (
	OpRelease     Op = "release"      // mark a record restored: its retention clock starts
	OpRemove      Op = "remove"       // drop a record now (gc frees its bytes)
	OpAssociate   Op = "associate"    // let dest restore source's records
	OpDissociate  Op = "dissociate"   // undo an association
	OpTokenCreate Op = "token-create" // a client token for a computer
	OpTokenRevoke Op = "token-revoke"
	OpRestoreOnly Op = "restore-only" // on=1 or on=0
	OpGCDryRun    Op = "gc-dry-run"   // what gc would free (then a confirmation to run it)
	OpGC          Op = "gc"
)

// ParseOp returns the action named s.
func ParseOp(s string) (Op, error) {
	switch op := Op(s); op {
	case OpRelease, OpRemove, OpAssociate, OpDissociate, OpTokenCreate, OpTokenRevoke, OpRestoreOnly, OpGCDryRun, OpGC:
		return op, nil
	}
	return "", fmt.Errorf("unknown action %q", s)
}

// actionArgs are an action's arguments, from the query (confirm) or the
// form (action).
type actionArgs struct {
	Op           Op
	ID, Computer string
	Source, Dest string
	On           bool
	Describe     string
	Danger       bool
}

func argsOf(get func(string) string) (actionArgs, error) {
	op, err := ParseOp(get("op"))
	if err != nil {
		return actionArgs{}, err
	}
	a := actionArgs{Op: op, ID: get("id"), Computer: get("computer"), Source: get("source"), Dest: get("dest"), On: get("on") == "1"}
	switch op {
	case OpRelease:
		a.Describe = "Mark record " + a.ID + " restored: it is kept until the retention period runs out."
	case OpRemove:
		a.Describe, a.Danger = "Remove record "+a.ID+" now. Its bytes are freed by the next gc; it cannot be restored afterwards.", true
	case OpAssociate:
		a.Describe = "Let computer " + a.Dest + " restore the records of computer " + a.Source + "."
	case OpDissociate:
		a.Describe = "Stop computer " + a.Dest + " from restoring the records of computer " + a.Source + "."
	case OpTokenCreate:
		a.Describe = "Create a client token for computer " + a.Computer + ". Its secret is shown once, on the next page."
	case OpTokenRevoke:
		a.Describe, a.Danger = "Revoke token "+a.ID+": every request with it is refused from now on.", true
	case OpRestoreOnly:
		if a.On {
			a.Describe, a.Danger = "Switch restore-only on: new captures are refused; restores go on.", true
		} else {
			a.Describe = "Switch restore-only off: captures are accepted again."
		}
	case OpGCDryRun:
		a.Describe = "Find out what gc would free (a dry run: nothing is deleted)."
	case OpGC:
		a.Describe, a.Danger = "Run gc now: packs no live record references are deleted.", true
	}
	return a, nil
}

func (c *Console) confirm(w http.ResponseWriter, r *http.Request, q *req) error {
	a, err := argsOf(r.URL.Query().Get)
	if err != nil {
		c.errorPage(w, http.StatusBadRequest, err.Error())
		return nil
	}
	return c.show(w, q, "confirm", "Confirm", a)
}

// actionResult is the page after an action.
type actionResult struct {
	Args    actionArgs
	Message string
	Secret  string // a new token's secret, shown once (the page is no-store)
	GC      *repo.MaintainReport
}

func (c *Console) action(w http.ResponseWriter, r *http.Request, q *req) error {
	a, err := argsOf(r.PostFormValue)
	if err != nil {
		c.errorPage(w, http.StatusBadRequest, err.Error())
		return nil
	}
	res, status, err := c.do(r, q, a)
	attrs := []any{"action", string(a.Op), "token", q.tok.ID}
	for _, kv := range [][2]string{{"record", a.ID}, {"computer", a.Computer}, {"source", a.Source}, {"dest", a.Dest}} {
		if kv[1] != "" {
			attrs = append(attrs, kv[0], kv[1])
		}
	}
	if a.Op == OpRestoreOnly {
		attrs = append(attrs, "on", a.On)
	}
	if err != nil {
		c.opts.Log.Warn("console action", append(attrs, "status", status, "error", err.Error())...)
		c.errorPage(w, status, err.Error())
		return nil
	}
	c.opts.Log.Info("console action", attrs...)
	res.Args = a
	return c.show(w, q, "result", "Done", res)
}

// do runs one action; status is the refusal's when err is not nil.
func (c *Console) do(r *http.Request, q *req, a actionArgs) (actionResult, int, error) {
	now := c.opts.Now()
	var res actionResult
	switch a.Op {
	case OpRelease, OpRemove:
		id, err := cas.ParseID(a.ID)
		if err != nil {
			return res, http.StatusNotFound, fmt.Errorf("no such record")
		}
		if a.Op == OpRelease {
			err = c.opts.Repo.Release(id, now)
		} else {
			err = c.opts.Remove(id)
		}
		if err != nil {
			return res, http.StatusNotFound, fmt.Errorf("record %s: %v", id, err)
		}
		res.Message = fmt.Sprintf("Record %s: %s done.", id, a.Op)
	case OpAssociate, OpDissociate:
		var err error
		if a.Op == OpAssociate {
			err = c.opts.Access.Associate(a.Source, a.Dest, now)
		} else {
			err = c.opts.Access.Dissociate(a.Source, a.Dest)
		}
		if err != nil {
			return res, http.StatusBadRequest, err
		}
		res.Message = string(a.Op) + " done."
	case OpTokenCreate:
		secret, t, err := c.opts.Access.CreateToken(a.Computer, access.RoleClient, 0, now)
		if err != nil {
			return res, http.StatusBadRequest, err
		}
		res.Secret, res.Message = secret, "Client token "+t.ID+" created for computer "+t.Computer+". Copy its secret now: it is not shown again."
	case OpTokenRevoke:
		if err := c.opts.Access.RevokeToken(a.ID, now); err != nil {
			return res, http.StatusBadRequest, err
		}
		if err := c.sessions.end("", a.ID, now); err != nil {
			return res, http.StatusInternalServerError, err
		}
		res.Message = "Token " + a.ID + " revoked."
	case OpRestoreOnly:
		if err := c.opts.Access.SetRestoreOnly(a.On); err != nil {
			return res, http.StatusInternalServerError, err
		}
		snap, err := c.opts.Access.Snapshot()
		if err != nil {
			return res, http.StatusInternalServerError, err
		}
		if c.opts.RestoreOnly(snap) != a.On {
			// The server's --restore-only flag is not the access file's switch.
			res.Message = "Restore-only stays on: the server was started with --restore-only."
		} else {
			res.Message = fmt.Sprintf("Restore-only is now %v.", map[bool]string{true: "on", false: "off"}[a.On])
		}
	case OpGCDryRun, OpGC:
		start := time.Now()
		rep, err := c.opts.GC(r.Context(), a.Op == OpGCDryRun)
		if err != nil {
			return res, http.StatusInternalServerError, err
		}
		res.GC = rep
		res.Message = fmt.Sprintf("%s finished in %v.", a.Op, time.Since(start).Round(time.Millisecond))
	}
	return res, 0, nil
}
