package capture

import (
	"context"

	"smp/cas/manifest"
)

// runCount runs the capture pipeline as a counting pass: the walker as in
// a capture, file workers that compare each file with the parent record
// and count it (countFile), and a finisher that stores no tree.
func runCount(ctx context.Context, store Store, opts Options, sel *selection) (Totals, error) {
	c, err := newCapturer(store, opts)
	if err != nil {
		return Totals{}, err
	}
	c.totals = &countTotals{}
	var prevRoot *manifest.Tree
	if opts.Parent != nil {
		if t, err := store.LoadTree(opts.Parent.Tree); err == nil {
			prevRoot = t
		}
	}
	if err := c.pipeline(ctx, sel, prevRoot); err != nil {
		return Totals{}, err
	}
	return Totals{Files: c.totals.files.Load(), Bytes: c.totals.bytes.Load()}, nil
}

// countFile counts a file the capture would read: not one unchanged since
// the parent record, nor a later name of an inode whose first name is
// counted.
func (c *capturer) countFile(job *fileJob) {
	if job.linkOf != nil || c.sameAsParent(job) {
		return
	}
	c.totals.files.Add(1)
	c.totals.bytes.Add(job.entry.Size)
}
