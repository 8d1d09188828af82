package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
)

// borgPassphrase is the passphrase of the run's borg repository (the
// repository and its key are removed with the scratch directory).
const borgPassphrase = "smp-bench"

// borg runs borg in dir with the run's repository environment.
func (r *runner) borg(ctx context.Context, dir string, args ...string) (child, error) {
	return r.exec(ctx, execSpec{name: r.tools["borg"], args: args, env: r.borgEnv, dir: dir})
}

// borgArchive is the archive in repo of user i's level-th backup (0:
// the capture, 1: the incremental).
func (r *runner) borgArchive(repo string, i, level int) string {
	return fmt.Sprintf("%s::%s-%s-%d", repo, r.computers[i], r.users[i], level)
}

// borgBackups creates one archive per profile in repo, user i as
// computer i, one child per user, after settling the warm paths, with paths relative to the corpus root (home/USER) so
// that an extract lands where the other tools' restores do. borg's files
// cache (in the run's BORG_BASE_DIR) lets a later level skip unchanged
// files, as restic's parent snapshot does.
func (r *runner) borgBackups(ctx context.Context, repo string, level int, warm ...string) (agg, error) {
	return r.eachUser(func(i int, u string) (child, error) {
		return r.borg(ctx, r.root, "create", r.borgArchive(repo, i, level), filepath.Join("home", u))
	}, warm...)
}

func (r *runner) borgCapture(ctx context.Context) {
	if r.missing(ToolBorg, ScenarioCapture, "borg") {
		return
	}
	r.borgRepo = filepath.Join(r.work, "borg-repo")
	if err := r.borgInit(ctx, r.borgRepo); err != nil {
		r.fail(ToolBorg, ScenarioCapture, err)
		r.borgRepo = ""
		return
	}
	a, err := r.borgBackups(ctx, r.borgRepo, 0, r.root)
	if err != nil {
		r.fail(ToolBorg, ScenarioCapture, err)
		r.borgRepo = ""
		return
	}
	row := r.capturedRow(a, ToolBorg, r.borgRepo)
	row.Note = "repokey (AES-CTR-256 + HMAC-SHA256), compression lz4 (default); stored = du of the repository"
	r.add(row)
}

// borgInit makes a fresh repository at repo with the run's borg
// environment.
func (r *runner) borgInit(ctx context.Context, repo string) error {
	r.borgEnv = []string{
		"BORG_PASSPHRASE=" + borgPassphrase,
		// Keys, cache and security directories under the scratch
		// directory, not the user's own.
		"BORG_BASE_DIR=" + filepath.Join(r.work, "borg-home"),
		// Every user backs up into the one repository, so each create
		// ages the other users' files-cache entries by one; the default
		// time to live (20) would drop them with more than 20 users.
		"BORG_FILES_CACHE_TTL=" + strconv.Itoa(max(20, 2*len(r.users))),
	}
	_, err := r.borg(ctx, "", "init", "--encryption", "repokey", repo)
	return err
}

// borgRestore extracts the first user from the capture's repository;
// scenario is restore or restore-cold.
func (r *runner) borgRestore(ctx context.Context, scenario string) {
	if r.borgRepo == "" {
		r.noCapture(ToolBorg, scenario, "borg")
		return
	}
	r.restoreFirst(scenario, ToolBorg, filepath.Join(r.work, "restore-borg"), r.borgRepo, func(target string) (child, error) {
		// borg extract writes below its working directory.
		return r.borg(ctx, target, "extract", r.borgArchive(r.borgRepo, 0, 0))
	}, homeOf(r.users[0]))
}

func (r *runner) borgIncremental(ctx context.Context) {
	if r.borgRepo == "" {
		r.noCapture(ToolBorg, ScenarioIncremental, "borg")
		return
	}
	before := du(r.borgRepo)
	a, err := r.borgBackups(ctx, r.borgRepo, 1, r.root)
	if err != nil {
		r.fail(ToolBorg, ScenarioIncremental, err)
		return
	}
	r.add(r.incrementalRow(a, ToolBorg, r.borgRepo, before, "files cache: same paths, inode, size and ctime"))
}
