package restore

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path"
	"slices"
	"strings"

	"smp/cas/manifest"
)

// NewAccount is a local account CreateAccounts makes on the target.
type NewAccount struct {
	Name string `json:"name"`
	Home string `json:"home"` // absolute in the target: /home/bob
}

// CreateOptions are how CreateAccounts makes accounts.
type CreateOptions struct {
	Target string
	// Disabled makes the accounts expired (useradd --expiredate 1): no
	// login of any kind until an administrator enables them (USMT /lae
	// without a password).
	Disabled bool
	// Useradd is the useradd program ("" finds it on PATH).
	Useradd string
}

// profilePath is the stored path of user's profile.
func profilePath(user string) string {
	if user == "root" {
		return "root"
	}
	return "home/" + user
}

// mapStored applies the longest --map prefix to a stored path, as the
// restore places it.
func mapStored(maps []Mapping, stored string) string {
	best := -1
	for i, m := range maps {
		if (stored == m.From || strings.HasPrefix(stored, m.From+"/")) && (best < 0 || len(m.From) > len(maps[best].From)) {
			best = i
		}
	}
	if best < 0 {
		return stored
	}
	return path.Join(maps[best].To, strings.TrimPrefix(stored, maps[best].From))
}

// AccountsToCreate returns the accounts the restore of rec needs that the
// target lacks: for each of the record's users (and each user a --map or
// --map-user names), the account their files go to, with its home where
// the restore puts the profile. Root is never created.
func AccountsToCreate(rec *manifest.Record, opts Options) ([]NewAccount, error) {
	acc, err := loadAccounts(opts.Target)
	if err != nil {
		return nil, err
	}
	moved := userMaps(opts.Maps)
	users := slices.Clone(rec.Users)
	for from := range moved {
		users = append(users, from)
	}
	for from := range opts.Users {
		users = append(users, from)
	}
	slices.Sort(users)
	var out []NewAccount
	for _, u := range slices.Compact(users) {
		dest := u
		if to, ok := moved[u]; ok {
			dest = to
		}
		if to, ok := opts.Users[u]; ok {
			dest = to
		}
		if dest == "root" || slices.ContainsFunc(out, func(a NewAccount) bool { return a.Name == dest }) {
			continue
		}
		if _, _, ok := acc.user(dest); ok {
			continue
		}
		if err := CheckAccountName(dest); err != nil {
			return nil, fmt.Errorf("cannot create the account of %s's files: %v", u, err)
		}
		out = append(out, NewAccount{Name: dest, Home: "/" + mapStored(opts.Maps, profilePath(u))})
	}
	return out, nil
}

// CreateAccounts creates accts in the target's own account files with
// useradd --root TARGET (the running system's when the target is /), each
// with a group of its name, its home not created (the restore makes it),
// its password locked. It stops at the first failure, naming the account.
func CreateAccounts(ctx context.Context, accts []NewAccount, o CreateOptions) error {
	prog := o.Useradd
	if prog == "" {
		var err error
		if prog, err = exec.LookPath("useradd"); err != nil {
			return fmt.Errorf("--create-users needs useradd (the shadow utilities): %w", err)
		}
	}
	for _, a := range accts {
		if err := CheckAccountName(a.Name); err != nil {
			return err
		}
		var args []string
		if path.Clean(o.Target) != "/" {
			args = append(args, "--root", o.Target)
		}
		args = append(args, "--home-dir", a.Home, "--no-create-home", "--user-group")
		if o.Disabled {
			args = append(args, "--expiredate", "1")
		}
		args = append(args, "--", a.Name)
		cmd := exec.CommandContext(ctx, prog, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("create account %s on %s: %v: %s", a.Name, o.Target, err, strings.TrimSpace(out.String()))
		}
	}
	return nil
}
