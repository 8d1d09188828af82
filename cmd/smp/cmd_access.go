package main

// Access control of a remote server: smp token, smp associate and smp admin
// edit DIR/access.json (package remote/access) and never open the store, so
// they work while smp serve holds it.

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"smp/remote/access"
)

const (
	tokenArgs     = "create|list|revoke --store DIR ..."
	associateArgs = "--store DIR (--source NAME --dest NAME [--remove] | --list [--json])"
	adminArgs     = "restore-only [on|off] --store DIR [--json]"
)

func openAccess(dir string) (*access.Store, error) {
	if err := needStore(dir); err != nil {
		return nil, err
	}
	return access.Open(dir)
}

// noArgs refuses positional arguments.
func noArgs(fs *pflag.FlagSet) error {
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (see smp %s --help)", fs.Arg(0), fs.Name())
	}
	return nil
}

func runToken(ctx context.Context, args []string) error {
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	switch sub {
	case "create":
		return runTokenCreate(ctx, args[1:])
	case "list":
		return runTokenList(ctx, args[1:])
	case "revoke":
		return runTokenRevoke(ctx, args[1:])
	case "-h", "--help":
		fmt.Fprintf(os.Stderr, "Usage:\n  smp token create --store DIR [--computer NAME] [--role client|admin] [--expires DURATION]\n"+
			"  smp token list --store DIR [--json]\n  smp token revoke --store DIR --id ID\n")
		return pflag.ErrHelp
	}
	return usagef("want: smp token create|list|revoke --store DIR ... (see smp token --help)")
}

func runTokenCreate(_ context.Context, args []string) error {
	fs := newFlags("token create", "--store DIR [--computer NAME] [--role client|admin] [--expires DURATION]")
	store := storeFlag(fs)
	computer := fs.String("computer", "", "the computer this token captures as and restores to (required for a client; an admin token without it acts for any computer)")
	role := fs.String("role", string(access.RoleClient), "client (one computer) or admin (every computer)")
	expiresFlag := fs.String("expires", "", "lifetime, like 90d or 36h (default: never expires)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	r := access.Role(*role)
	if r != access.RoleClient && r != access.RoleAdmin {
		return usagef("--role: want client or admin, not %q", *role)
	}
	if r == access.RoleClient && *computer == "" {
		return usagef("--computer NAME is required for a client token")
	}
	var expires time.Duration
	if *expiresFlag != "" {
		d, err := parseDays(*expiresFlag)
		if err != nil {
			return usagef("--expires: %v", err)
		}
		if d == 0 {
			return usagef("--expires: %q: give a positive duration, or leave --expires out for a token that never expires", *expiresFlag)
		}
		expires = d
	}
	a, err := openAccess(*store)
	if err != nil {
		return err
	}
	secret, t, err := a.CreateToken(*computer, r, expires, time.Now())
	if err != nil {
		return err
	}
	fmt.Println(secret)
	who := "computer " + t.Computer
	if t.Computer == "" {
		who = "any computer"
	}
	until := "never expires"
	if !t.Expires.IsZero() {
		until = "expires " + t.Expires.Local().Format(time.DateTime)
	}
	fmt.Fprintf(os.Stderr, "created %s token %s for %s (%s); the secret above cannot be shown again: give it to the client now (--token or SMP_TOKEN)\n",
		t.Role, t.ID, who, until)
	return nil
}

// tokenState is active, expired or revoked.
func tokenState(t access.Token, now time.Time) string {
	switch {
	case !t.Revoked.IsZero():
		return "revoked"
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return "expired"
	}
	return "active"
}

func runTokenList(_ context.Context, args []string) error {
	fs := newFlags("token list", "--store DIR [--json]")
	store := storeFlag(fs)
	asJSON := fs.Bool("json", false, "print as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	a, err := openAccess(*store)
	if err != nil {
		return err
	}
	sn, err := a.Snapshot()
	if err != nil {
		return err
	}
	type row struct {
		ID       string     `json:"id"`
		Computer string     `json:"computer"` // "" for an admin token of any computer
		Role     string     `json:"role"`
		Created  time.Time  `json:"created"`
		Expires  *time.Time `json:"expires,omitempty"`
		Revoked  *time.Time `json:"revoked,omitempty"`
		State    string     `json:"state"` // active, expired or revoked
	}
	now := time.Now()
	rows := []row{}
	for _, t := range sn.Tokens() {
		rw := row{ID: t.ID, Computer: t.Computer, Role: string(t.Role), Created: t.Created, State: tokenState(t, now)}
		if !t.Expires.IsZero() {
			rw.Expires = &t.Expires
		}
		if !t.Revoked.IsZero() {
			rw.Revoked = &t.Revoked
		}
		rows = append(rows, rw)
	}
	if *asJSON {
		return printJSON(os.Stdout, map[string]any{"tokens": rows})
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCOMPUTER\tROLE\tCREATED\tEXPIRES\tSTATE")
	for _, r := range rows {
		computer, expires, state := r.Computer, "never", r.State
		if computer == "" {
			computer = "(any)"
		}
		if r.Expires != nil {
			expires = r.Expires.Local().Format(time.DateTime)
		}
		if r.Revoked != nil {
			state += " " + r.Revoked.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, computer, r.Role, r.Created.Local().Format(time.DateTime), expires, state)
	}
	return tw.Flush()
}

func runTokenRevoke(_ context.Context, args []string) error {
	fs := newFlags("token revoke", "--store DIR --id ID")
	store := storeFlag(fs)
	id := fs.String("id", "", "the token's ID, as smp token list shows it")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *id == "" {
		return usagef("--id ID is required (see smp token list)")
	}
	a, err := openAccess(*store)
	if err != nil {
		return err
	}
	if err := a.RevokeToken(*id, time.Now()); err != nil {
		return err
	}
	fmt.Printf("revoked token %s: a running server refuses it from its next request\n", *id)
	return nil
}

func runAssociate(_ context.Context, args []string) error {
	fs := newFlags("associate", associateArgs)
	store := storeFlag(fs)
	source := fs.String("source", "", "the computer whose records may be restored (e.g. the old machine)")
	dest := fs.String("dest", "", "the computer that may restore them (e.g. its replacement)")
	remove := fs.Bool("remove", false, "remove the association instead")
	list := fs.Bool("list", false, "list the associations")
	asJSON := fs.Bool("json", false, "print the list as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *list {
		if *source != "" || *dest != "" || *remove {
			return usagef("--list takes no --source, --dest or --remove")
		}
		return listAssociations(*store, *asJSON)
	}
	switch {
	case *asJSON:
		return usagef("--json goes with --list")
	case *source == "" || *dest == "":
		return usagef("give --source NAME and --dest NAME, or --list")
	case *source == *dest:
		return usagef("--source and --dest are both %s: a computer may always restore its own records", *source)
	}
	a, err := openAccess(*store)
	if err != nil {
		return err
	}
	if *remove {
		if err := a.Dissociate(*source, *dest); err != nil {
			return err
		}
		fmt.Printf("%s may no longer restore the records of %s\n", *dest, *source)
		return nil
	}
	if err := a.Associate(*source, *dest, time.Now()); err != nil {
		return err
	}
	fmt.Printf("%s may now restore the records of %s\n", *dest, *source)
	return nil
}

func listAssociations(store string, asJSON bool) error {
	a, err := openAccess(store)
	if err != nil {
		return err
	}
	sn, err := a.Snapshot()
	if err != nil {
		return err
	}
	assocs := sn.Associations()
	if asJSON {
		return printJSON(os.Stdout, map[string]any{"associations": assocs})
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tDEST\tCREATED")
	for _, as := range assocs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", as.Source, as.Dest, as.Created.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func runAdmin(_ context.Context, args []string) error {
	if len(args) == 0 || args[0] != "restore-only" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintf(os.Stderr, "Usage: smp admin %s\n", adminArgs)
			return pflag.ErrHelp
		}
		return usagef("want: smp admin %s", adminArgs)
	}
	fs := newFlags("admin restore-only", "[on|off] --store DIR [--json]")
	store := storeFlag(fs)
	asJSON := fs.Bool("json", false, "print the state as JSON")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	set, on := false, false
	switch {
	case fs.NArg() > 1:
		return usagef("want one of on or off, not %q", fs.Args())
	case fs.NArg() == 1:
		switch fs.Arg(0) {
		case "on":
			set, on = true, true
		case "off":
			set = true
		default:
			return usagef("want on or off, not %q", fs.Arg(0))
		}
	}
	a, err := openAccess(*store)
	if err != nil {
		return err
	}
	if set {
		if err := a.SetRestoreOnly(on); err != nil {
			return err
		}
	}
	sn, err := a.Snapshot()
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(os.Stdout, map[string]bool{"restore_only": sn.RestoreOnly()})
	}
	state := "off"
	if sn.RestoreOnly() {
		state = "on: a running server refuses captures"
	}
	fmt.Printf("restore-only %s\n", state)
	return nil
}
