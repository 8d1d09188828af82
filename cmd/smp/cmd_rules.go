package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"smp/filter"
)

const rulesArgs = "list | show NAME"

// cmdRules lists the built-in rule sets or prints one, as a starting
// point for a rules file of one's own.
func cmdRules(ctx context.Context, args []string) error {
	fs := newFlags("rules", rulesArgs)
	if err := parse(fs, args); err != nil {
		return err
	}
	return runRules(fs.Args(), os.Stdout)
}

func runRules(args []string, stdout io.Writer) error {
	switch {
	case len(args) == 1 && args[0] == "list":
		for _, n := range filter.BuiltinNames() {
			fmt.Fprintf(stdout, "%s%s\n", filter.BuiltinPrefix, n)
		}
		return nil
	case len(args) == 2 && args[0] == "show":
		b, err := filter.Builtin(args[1])
		if err != nil {
			return usagef("%v", err)
		}
		_, err = stdout.Write(b)
		return err
	}
	return usagef("want smp rules list, or smp rules show NAME (one of the built-in sets: smp rules show documents > my.rules)")
}
