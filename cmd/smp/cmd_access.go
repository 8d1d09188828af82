package main

// Access control of a remote server: smp token, smp associate and smp admin
// edit the store's access file (package remote/access: DIR/access.json,
// or an object of the bucket for a store on S3, which every smp serve
// sharing it reads) and never open the store, so they work while smp
// serve holds it.

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"smp/remote/access"
	"smp/store"
)

const (
	tokenArgs     = "create|list|revoke --store DIR ..."
	associateArgs = "--store DIR (--source NAME --dest NAME [--remove] | --list [--json])"
	adminArgs     = "restore-only|limits --store DIR ..."
)

// openAccess opens the access file of the store at dir: for a store on
// S3, the one in its bucket, shared by every smp serve of the store. An
// encrypted store's is sealed, so kf must find the store's key. The
// caller closes it.
func openAccess(dir string, s3 *s3Flags, kf *keyFlags) (*access.Store, error) {
	if err := needStore(dir); err != nil {
		return nil, err
	}
	return store.OpenAccess(dir, s3.opts(), kf.unlock())
}

// accessLocVar registers --store, the S3 flags and the key flags of an
// access command.
func accessLocVar(fs *pflag.FlagSet, dir *string, s3 *s3Flags, kf *keyFlags) {
	storeLocVar(fs, dir, s3)
	kf.AddFlags(fs)
}

// noArgs refuses positional arguments.
func noArgs(fs *pflag.FlagSet) error {
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (see smp %s --help)", fs.Arg(0), fs.Name())
	}
	return nil
}

func cmdToken(ctx context.Context, args []string) error {
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	switch sub {
	case "create":
		return cmdTokenCreate(ctx, args[1:])
	case "list":
		return cmdTokenList(ctx, args[1:])
	case "revoke":
		return cmdTokenRevoke(ctx, args[1:])
	case "-h", "--help":
		fmt.Fprintf(os.Stderr, "Usage:\n  smp token create --store DIR [--computer NAME] [--role client|admin] [--expires DURATION]\n"+
			"  smp token list --store DIR [--json]\n  smp token revoke --store DIR --id ID\n\nRun smp token COMMAND --help for a command's flags.\n")
		return pflag.ErrHelp
	}
	return usagef("want: smp token create|list|revoke --store DIR ... (see smp token --help)")
}

// tokenOptions are the flags of the smp token subcommands.
type tokenOptions struct {
	Store, Computer, Role, Expires, ID string
	JSON                               bool
	S3                                 s3Flags
	keyFlags
}

// parseAccessFlags parses a subcommand's flags, added by add, refusing
// positional arguments.
func parseAccessFlags(name, usage string, args []string, add func(fs *pflag.FlagSet)) error {
	fs := newFlags(name, usage)
	add(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	return noArgs(fs)
}

func cmdTokenCreate(ctx context.Context, args []string) error {
	var o tokenOptions
	err := parseAccessFlags("token create", "--store DIR [--computer NAME] [--role client|admin] [--expires DURATION]", args, func(fs *pflag.FlagSet) {
		accessLocVar(fs, &o.Store, &o.S3, &o.keyFlags)
		fs.StringVar(&o.Computer, "computer", "", "the computer this token captures as and restores to (required for a client; an admin token without it acts for any computer)")
		fs.StringVar(&o.Role, "role", string(access.RoleClient), "client (one computer) or admin (every computer)")
		fs.StringVar(&o.Expires, "expires", "", "lifetime, like 90d or 36h (default: never expires)")
	})
	if err != nil {
		return err
	}
	return runTokenCreate(ctx, &o, os.Stdout)
}

func runTokenCreate(_ context.Context, o *tokenOptions, stdout io.Writer) error {
	r := access.Role(o.Role)
	if r != access.RoleClient && r != access.RoleAdmin {
		return usagef("--role: want client or admin, not %q", o.Role)
	}
	if r == access.RoleClient && o.Computer == "" {
		return usagef("--computer NAME is required for a client token")
	}
	var expires time.Duration
	if o.Expires != "" {
		d, err := parseDays(o.Expires)
		if err != nil {
			return usagef("--expires: %v", err)
		}
		if d == 0 {
			return usagef("--expires: %q: give a positive duration, or leave --expires out for a token that never expires", o.Expires)
		}
		expires = d
	}
	a, err := openAccess(o.Store, &o.S3, &o.keyFlags)
	if err != nil {
		return err
	}
	defer a.Close()
	secret, t, err := a.CreateToken(o.Computer, r, expires, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, secret)
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

func cmdTokenList(ctx context.Context, args []string) error {
	var o tokenOptions
	err := parseAccessFlags("token list", "--store DIR [--json]", args, func(fs *pflag.FlagSet) {
		accessLocVar(fs, &o.Store, &o.S3, &o.keyFlags)
		fs.BoolVar(&o.JSON, "json", false, "print as JSON")
	})
	if err != nil {
		return err
	}
	return runTokenList(ctx, &o, os.Stdout)
}

// tokenRow is one line of smp token list.
type tokenRow struct {
	ID       string     `json:"id"`
	Computer string     `json:"computer"` // "" for an admin token of any computer
	Role     string     `json:"role"`
	Created  time.Time  `json:"created"`
	Expires  *time.Time `json:"expires,omitempty"`
	Revoked  *time.Time `json:"revoked,omitempty"`
	State    string     `json:"state"` // active, expired or revoked
}

func runTokenList(_ context.Context, o *tokenOptions, stdout io.Writer) error {
	a, err := openAccess(o.Store, &o.S3, &o.keyFlags)
	if err != nil {
		return err
	}
	defer a.Close()
	sn, err := a.Snapshot()
	if err != nil {
		return err
	}
	now := time.Now()
	rows := []tokenRow{}
	for _, t := range sn.Tokens() {
		rw := tokenRow{ID: t.ID, Computer: t.Computer, Role: string(t.Role), Created: t.Created, State: tokenState(t, now)}
		if !t.Expires.IsZero() {
			rw.Expires = &t.Expires
		}
		if !t.Revoked.IsZero() {
			rw.Revoked = &t.Revoked
		}
		rows = append(rows, rw)
	}
	if o.JSON {
		return printJSON(stdout, map[string]any{"tokens": rows})
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
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

func cmdTokenRevoke(ctx context.Context, args []string) error {
	var o tokenOptions
	err := parseAccessFlags("token revoke", "--store DIR --id ID", args, func(fs *pflag.FlagSet) {
		accessLocVar(fs, &o.Store, &o.S3, &o.keyFlags)
		fs.StringVar(&o.ID, "id", "", "the token's ID, as smp token list shows it")
	})
	if err != nil {
		return err
	}
	return runTokenRevoke(ctx, &o, os.Stdout)
}

func runTokenRevoke(_ context.Context, o *tokenOptions, stdout io.Writer) error {
	if o.ID == "" {
		return usagef("--id ID is required (see smp token list)")
	}
	a, err := openAccess(o.Store, &o.S3, &o.keyFlags)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.RevokeToken(o.ID, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked token %s: a running server refuses it from its next request\n", o.ID)
	return nil
}

// associateOptions are the flags of smp associate.
type associateOptions struct {
	Store, Source, Dest string
	Remove, List, JSON  bool
	S3                  s3Flags
	keyFlags
}

func (o *associateOptions) AddFlags(fs *pflag.FlagSet) {
	accessLocVar(fs, &o.Store, &o.S3, &o.keyFlags)
	fs.StringVar(&o.Source, "source", "", "the computer whose records may be restored (e.g. the old machine)")
	fs.StringVar(&o.Dest, "dest", "", "the computer that may restore them (e.g. its replacement)")
	fs.BoolVar(&o.Remove, "remove", false, "remove the association instead")
	fs.BoolVar(&o.List, "list", false, "list the associations")
	fs.BoolVar(&o.JSON, "json", false, "print the list as JSON")
}

func cmdAssociate(ctx context.Context, args []string) error {
	var o associateOptions
	if err := parseAccessFlags("associate", associateArgs, args, o.AddFlags); err != nil {
		return err
	}
	return runAssociate(ctx, &o, os.Stdout)
}

func runAssociate(_ context.Context, o *associateOptions, stdout io.Writer) error {
	if o.List {
		if o.Source != "" || o.Dest != "" || o.Remove {
			return usagef("--list takes no --source, --dest or --remove")
		}
		return listAssociations(o, stdout)
	}
	switch {
	case o.JSON:
		return usagef("--json goes with --list")
	case o.Source == "" || o.Dest == "":
		return usagef("give --source NAME and --dest NAME, or --list")
	case o.Source == o.Dest:
		return usagef("--source and --dest are both %s: a computer may always restore its own records", o.Source)
	}
	a, err := openAccess(o.Store, &o.S3, &o.keyFlags)
	if err != nil {
		return err
	}
	defer a.Close()
	if o.Remove {
		if err := a.Dissociate(o.Source, o.Dest); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s may no longer restore the records of %s\n", o.Dest, o.Source)
		return nil
	}
	if err := a.Associate(o.Source, o.Dest, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s may now restore the records of %s\n", o.Dest, o.Source)
	return nil
}

func listAssociations(o *associateOptions, stdout io.Writer) error {
	a, err := openAccess(o.Store, &o.S3, &o.keyFlags)
	if err != nil {
		return err
	}
	defer a.Close()
	sn, err := a.Snapshot()
	if err != nil {
		return err
	}
	assocs := sn.Associations()
	if o.JSON {
		return printJSON(stdout, map[string]any{"associations": assocs})
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tDEST\tCREATED")
	for _, as := range assocs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", as.Source, as.Dest, as.Created.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

// adminOptions are the flags of smp admin restore-only and smp admin
// limits.
type adminOptions struct {
	Store string
	JSON  bool
	Set   string // restore-only: "on", "off", or "" to show the state
	// limits: the flags given ("" unchanged; "none" removes a limit).
	MaxRecords, MaxStoreBytes, Quota string
	S3                               s3Flags
	keyFlags
}

func cmdAdmin(ctx context.Context, args []string) error {
	var o adminOptions
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	switch sub {
	case "restore-only":
		fs := newFlags("admin restore-only", "[on|off] --store DIR [--json]")
		accessLocVar(fs, &o.Store, &o.S3, &o.keyFlags)
		fs.BoolVar(&o.JSON, "json", false, "print the state as JSON")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		switch {
		case fs.NArg() > 1:
			return usagef("want one of on or off, not %q", fs.Args())
		case fs.NArg() == 1:
			o.Set = fs.Arg(0)
		}
		return runAdmin(ctx, &o, os.Stdout)
	case "limits":
		err := parseAccessFlags("admin limits", "--store DIR [--max-records N] [--max-store-bytes SIZE] [--quota SIZE] [--json]", args[1:], func(fs *pflag.FlagSet) {
			accessLocVar(fs, &o.Store, &o.S3, &o.keyFlags)
			fs.StringVar(&o.MaxRecords, "max-records", "", "refuse captures once the store holds this many records (plus captures in progress); none: no limit")
			fs.StringVar(&o.MaxStoreBytes, "max-store-bytes", "", "refuse captures that would take the store's stored bytes over this, e.g. 2TiB; none: no limit")
			fs.StringVar(&o.Quota, "quota", "", "per computer: refuse captures that would make its records' new stored bytes exceed this, e.g. 20GiB; none: no limit")
			fs.BoolVar(&o.JSON, "json", false, "print the limits as JSON")
		})
		if err != nil {
			return err
		}
		return runAdminLimits(ctx, &o, os.Stdout)
	case "-h", "--help":
		fmt.Fprintf(os.Stderr, "Usage:\n  smp admin restore-only [on|off] --store DIR [--json]\n"+
			"  smp admin limits --store DIR [--max-records N] [--max-store-bytes SIZE] [--quota SIZE] [--json]\n\n"+
			"Settings of the store that every smp serve of it applies (a store on S3: every server sharing the bucket, within 2 s).\n"+
			"Run smp admin COMMAND --help for a command's flags.\n")
		return pflag.ErrHelp
	}
	return usagef("want: smp admin %s (see smp admin --help)", adminArgs)
}

func runAdmin(_ context.Context, o *adminOptions, stdout io.Writer) error {
	if o.Set != "" && o.Set != "on" && o.Set != "off" {
		return usagef("want on or off, not %q", o.Set)
	}
	a, err := openAccess(o.Store, &o.S3, &o.keyFlags)
	if err != nil {
		return err
	}
	defer a.Close()
	if o.Set != "" {
		if err := a.SetRestoreOnly(o.Set == "on"); err != nil {
			return err
		}
	}
	sn, err := a.Snapshot()
	if err != nil {
		return err
	}
	if o.JSON {
		return printJSON(stdout, map[string]bool{"restore_only": sn.RestoreOnly()})
	}
	state := "off"
	if sn.RestoreOnly() {
		state = "on: a running server refuses captures"
	}
	fmt.Fprintf(stdout, "restore-only %s\n", state)
	return nil
}
