package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// smpRestore measures the restore of the first user from the capture
// scenario's unencrypted store for r.rounds() rounds, every round's tree
// compared with the corpus: the row the baselines' restores of the same
// profile are compared with. What encryption costs a restore is measured
// on every profile, by smpRestoreAll.
func (r *runner) smpRestore(ctx context.Context) error {
	u := r.users[0]
	v := r.variants()[0]
	r.rep.RestoreVerified = false
	var rounds []agg
	for range r.rounds() {
		var a agg
		if err := r.smpRestoreInto(ctx, v, u, &a); err != nil {
			return r.restoreFailed(v, ScenarioRestore, u, err)
		}
		rounds = append(rounds, a)
	}
	_, logical, _ := treeSize(filepath.Join(r.root, "home", u))
	a, walls := medianAgg(rounds)
	row := a.row(v.tool, ScenarioRestore, logical)
	row.Verified = new(bool)
	*row.Verified = true
	row.Note = "restore of " + u + ", verified byte for byte"
	if n := roundsNote(walls, ""); n != "" {
		row.Note += "; " + n
	}
	r.add(row)
	r.rep.RestoreVerified = true
	return nil
}

// smpRestoreAll measures the restore of every user's record, one child
// per user in turn, from the unencrypted and the encrypted store of the
// capture scenario, alternating the two for r.rounds() rounds (ABBA): a
// round restores the whole corpus, so that what encryption costs is
// measured on as many bytes as the capture scenario's and not decided
// by a process's fixed costs or by scheduler noise. The first round of
// each store is compared byte for byte with the corpus; later rounds must
// restore the same files and bytes without error. The encrypted store is
// removed afterwards: the later scenarios use the unencrypted one.
func (r *runner) smpRestoreAll(ctx context.Context) error {
	vs := r.variants()
	defer func() {
		for _, v := range vs[1:] {
			removeAll(v.store)
		}
	}()
	byTool := map[string][]agg{}
	first := map[string]restoreTotals{}
	for k := range r.rounds() {
		for _, i := range roundOrder(k, len(vs)) {
			v := vs[i]
			_, verify := first[v.tool]
			verify = !verify
			a, totals, err := r.smpRestoreEvery(ctx, v, verify)
			if err == nil && !verify && totals != first[v.tool] {
				err = fmt.Errorf("round %d restored %d files and %d bytes, the first round %d and %d: %w", k+1, totals.Files, totals.Bytes, first[v.tool].Files, first[v.tool].Bytes, errRestoreDiffers)
			}
			if err != nil {
				return r.restoreFailed(v, ScenarioRestoreAll, "every user", err)
			}
			if verify {
				first[v.tool] = totals
			}
			byTool[v.tool] = append(byTool[v.tool], a)
		}
	}
	for _, v := range vs {
		a, walls := medianAgg(byTool[v.tool])
		row := a.row(v.tool, ScenarioRestoreAll, r.logical)
		row.Verified = new(bool)
		*row.Verified = true
		row.Note = fmt.Sprintf("restore of every user (%d children), the first round verified byte for byte", len(r.users))
		if n := roundsNote(walls, otherTool(vs, v)); n != "" {
			row.Note += "; " + n
		}
		r.add(row)
	}
	r.noEncryption(ScenarioRestoreAll)
	r.recordCost(ScenarioRestoreAll, byTool)
	return nil
}

// restoreFailed adds v's failed row of scenario and returns the error
// that stops the run.
func (r *runner) restoreFailed(v variant, scenario, who string, err error) error {
	row := Row{Tool: v.tool, Scenario: scenario, Status: StatusFailed, Note: err.Error()}
	if errors.Is(err, errRestoreDiffers) {
		row.Verified = new(bool)
	}
	r.add(row)
	return fmt.Errorf("%s %s of %s: %w", v.tool, scenario, who, err)
}

// restoreTotals are what one round of restores reported.
type restoreTotals struct{ Files, Bytes int64 }

// smpRestoreEvery restores every user's record from v's store into one
// empty directory, one child per user, after settling the store; with
// verify, every profile is then compared with the corpus. The directory
// is removed afterwards.
func (r *runner) smpRestoreEvery(ctx context.Context, v variant, verify bool) (agg, restoreTotals, error) {
	var a agg
	var t restoreTotals
	target := filepath.Join(r.work, "restore-smp")
	if err := os.Mkdir(target, 0o755); err != nil {
		return a, t, err
	}
	defer removeAll(target)
	if err := r.settleRestore(v.store); err != nil {
		return a, t, err
	}
	for _, u := range r.users {
		out, err := r.smpRestoreChild(ctx, v, u, target, &a)
		if err != nil {
			return a, t, err
		}
		t.Files += out.Files
		t.Bytes += out.Bytes
	}
	if verify {
		for _, u := range r.users {
			if err := compareTrees(filepath.Join(r.root, "home", u), filepath.Join(target, "home", u)); err != nil {
				return a, t, fmt.Errorf("%s: %w: %w", u, errRestoreDiffers, err)
			}
		}
	}
	return a, t, nil
}

// errRestoreDiffers marks a restore whose tree differs from the corpus.
var errRestoreDiffers = errors.New("restored tree differs from the corpus")

// smpRestoreInto restores user's record from v's store into an empty
// directory after settling the store, adds the child to a and compares
// the tree with the corpus. The directory is removed afterwards.
func (r *runner) smpRestoreInto(ctx context.Context, v variant, user string, a *agg) error {
	target := filepath.Join(r.work, "restore-smp")
	if err := os.Mkdir(target, 0o755); err != nil {
		return err
	}
	defer removeAll(target)
	if err := r.settleRestore(v.store); err != nil {
		return err
	}
	if _, err := r.smpRestoreChild(ctx, v, user, target, a); err != nil {
		return err
	}
	if err := compareTrees(filepath.Join(r.root, "home", user), filepath.Join(target, "home", user)); err != nil {
		return fmt.Errorf("%w: %w", errRestoreDiffers, err)
	}
	return nil
}

// smpRestoreOut is what `smp restore --json` reports.
type smpRestoreOut struct {
	Files  int64 `json:"files"`
	Bytes  int64 `json:"bytes"`
	Errors int64 `json:"errors"`
}

// smpRestoreChild runs one `smp restore --json` of user's record from
// v's store into target and adds the child to a.
func (r *runner) smpRestoreChild(ctx context.Context, v variant, user, target string, a *agg) (smpRestoreOut, error) {
	var out smpRestoreOut
	records := r.smpRecords
	if v.keyFile != "" {
		records = r.smpEncRecords
	}
	args := append([]string{"restore", "--store", v.store, "--record", records[user], "--root", target, "--json"}, keyArgs(v.keyFile)...)
	c, err := r.exec(ctx, execSpec{name: r.opts.Bin, args: args})
	if err != nil {
		return out, err
	}
	a.add(c)
	if err := json.Unmarshal(c.stdout, &out); err != nil {
		return out, fmt.Errorf("smp restore output: %w: %q", err, c.stdout)
	}
	if out.Errors > 0 {
		return out, fmt.Errorf("smp restore of %s: %d errors", user, out.Errors)
	}
	return out, nil
}
