package console

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"smp/cas"
	"smp/cas/manifest"
	"smp/remote/access"
	"smp/repo"
	"smp/repo/report"
)

// overviewData is the overview page.
type overviewData struct {
	Stats       *report.Stats
	Cap         report.Capacity
	Bar         bar
	Chart       chart
	Captures    []captureView
	Restores    []restoreView
	LastGC      GCStatus
	RestoreOnly bool
}

type restoreView struct {
	Restore
	Computer string
	Logical  uint64
	progress
}

type captureView struct {
	Capture
	progress
	WireRate float64 // stored bytes uploaded per second
}

// progress is a transfer's progress against a total: done of total bytes
// since started. A zero total (none known) shows the rate alone.
type progress struct {
	HasTotal   bool
	Pct        float64
	RateBytesS float64
	ETA        time.Duration
}

const maxETA = 365 * 24 * time.Hour

func progressOf(done, total uint64, elapsed time.Duration) progress {
	var p progress
	if secs := elapsed.Seconds(); secs > 0 {
		p.RateBytesS = float64(done) / secs
	}
	if total == 0 {
		return p
	}
	p.HasTotal = true
	p.Pct = min(100, float64(done)*100/float64(total))
	if p.RateBytesS > 0 && done < total {
		// Totals are a client's claim (up to 2^56 bytes): an ETA past a
		// year is shown as a year rather than overflow a Duration.
		secs := min(float64(total-done)/p.RateBytesS, maxETA.Seconds())
		p.ETA = time.Duration(secs * float64(time.Second)).Round(time.Second)
	}
	return p
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, q *req) error {
	reply, err := c.stats()
	if err != nil {
		return err
	}
	st := reply.Stats
	if err := c.hist.maybeSample(c.opts.Now(), func() (*report.Stats, error) { return st, nil }); err != nil {
		c.opts.Log.Warn("console history sample", "error", err)
	}
	// The chart ends with the figures of now, beside the kept samples.
	now := c.opts.Now()
	points := append(c.hist.samples(), sample{At: now.Unix(), Stored: st.StoredBytes, Logical: st.LogicalBytes, Records: st.Records})
	d := overviewData{Stats: st, Chart: buildChart(points), RestoreOnly: c.opts.RestoreOnly(q.snap)}
	if reply.Capacity != nil {
		d.Cap = *reply.Capacity
	}
	if c.opts.LastGC != nil {
		d.LastGC = c.opts.LastGC()
	}
	if max := d.Cap.MaxStoreBytes; max > 0 {
		// A store-size limit is the capacity the bar is drawn against.
		d.Bar = buildBar(st.StoredBytes, d.Cap.ReservedBytes, max-min(max, st.StoredBytes+d.Cap.ReservedBytes), 0)
	} else {
		d.Bar = buildBar(st.StoredBytes, d.Cap.ReservedBytes, st.FreeBytes, d.Cap.MinFreeBytes)
	}
	if c.opts.Captures != nil {
		for _, cp := range c.opts.Captures() {
			v := captureView{Capture: cp, progress: progressOf(cp.Done, cp.ExpectedBytes, now.Sub(cp.Started))}
			if secs := now.Sub(cp.Started).Seconds(); secs > 0 {
				v.WireRate = float64(cp.Received) / secs
			}
			d.Captures = append(d.Captures, v)
		}
	}
	if c.opts.Restores != nil {
		if rs := c.opts.Restores(); len(rs) > 0 {
			recs, err := c.opts.Repo.Records()
			if err != nil {
				return err
			}
			byID := map[string]repo.RecordInfo{}
			for _, r := range recs {
				byID[r.ID.String()] = r
			}
			for _, r := range rs {
				v := restoreView{Restore: r}
				if ri, ok := byID[r.Record]; ok {
					v.Computer, v.Logical = ri.Computer, ri.Bytes
				}
				v.progress = progressOf(r.Served, v.Logical, now.Sub(r.Started))
				d.Restores = append(d.Restores, v)
			}
			slices.SortFunc(d.Restores, func(a, b restoreView) int { return strings.Compare(a.Record, b.Record) })
		}
	}
	slices.SortFunc(d.Captures, func(a, b captureView) int { return a.Started.Compare(b.Started) })
	return c.show(w, q, "overview", "Overview", d)
}

// recordView is one record as the computers pages show it.
type recordView struct {
	ID        string
	Computer  string
	Created   time.Time
	Age       time.Duration
	Released  *time.Time
	Stale     bool
	Files     uint64
	Logical   uint64
	OnlyBytes uint64 // stored bytes only this record references
}

type computerView struct {
	Name      string
	Records   []recordView
	Logical   uint64
	OnlyBytes uint64
	Stale     int
	Newest    time.Time
	RestoreBy []string // computers associated to restore its records
}

// computerViews builds every computer's view from the same calls as
// GET /v1/records and GET /v1/stats?usage=1.
func (c *Console) computerViews(snap *access.Snapshot) ([]computerView, error) {
	recs, err := c.opts.Repo.Records()
	if err != nil {
		return nil, err
	}
	released, err := c.opts.Repo.ReleasedAt()
	if err != nil {
		return nil, err
	}
	per, comps, err := c.opts.Repo.Usage()
	if err != nil {
		return nil, err
	}
	only := map[string]uint64{}
	for _, u := range per {
		only[u.ID] = u.OnlyBytes
	}
	byName := map[string]*computerView{}
	var out []*computerView
	now := c.opts.Now()
	for _, rec := range recs {
		cv := byName[rec.Computer]
		if cv == nil {
			cv = &computerView{Name: rec.Computer}
			byName[rec.Computer] = cv
			out = append(out, cv)
		}
		rv := recordView{ID: rec.ID.String(), Computer: rec.Computer, Created: rec.Created, Age: now.Sub(rec.Created).Round(time.Minute),
			Files: rec.Files, Logical: rec.Bytes, OnlyBytes: only[rec.ID.String()]}
		if at, ok := released[rec.ID]; ok {
			rv.Released = &at
		}
		rv.Stale = rv.Released == nil && now.Sub(rec.Created) > c.opts.StaleAfter
		if rv.Stale {
			cv.Stale++
		}
		cv.Records = append(cv.Records, rv)
		cv.Logical += rec.Bytes
		cv.Newest = rec.Created
	}
	for _, u := range comps {
		if cv := byName[u.Computer]; cv != nil {
			cv.OnlyBytes = u.OnlyBytes
		}
	}
	for _, a := range snap.Associations() {
		if cv := byName[a.Source]; cv != nil {
			cv.RestoreBy = append(cv.RestoreBy, a.Dest)
		}
	}
	views := make([]computerView, len(out))
	for i, cv := range out {
		views[i] = *cv
	}
	return views, nil
}

type computersData struct {
	Computers    []computerView
	Filter, Sort string
	Associations []access.Association
}

func (c *Console) computers(w http.ResponseWriter, r *http.Request, q *req) error {
	views, err := c.computerViews(q.snap)
	if err != nil {
		return err
	}
	filter := r.URL.Query().Get("q")
	if filter != "" {
		views = slices.DeleteFunc(views, func(v computerView) bool { return !strings.Contains(strings.ToLower(v.Name), strings.ToLower(filter)) })
	}
	sortBy := r.URL.Query().Get("sort")
	switch sortBy {
	case "size":
		slices.SortStableFunc(views, func(a, b computerView) int { return cmp.Compare(b.OnlyBytes, a.OnlyBytes) })
	case "age":
		slices.SortStableFunc(views, func(a, b computerView) int { return a.Newest.Compare(b.Newest) })
	case "stale":
		slices.SortStableFunc(views, func(a, b computerView) int { return cmp.Compare(b.Stale, a.Stale) })
	default:
		sortBy = "name"
		slices.SortStableFunc(views, func(a, b computerView) int { return strings.Compare(a.Name, b.Name) })
	}
	return c.show(w, q, "computers", "Computers", computersData{Computers: views, Filter: filter, Sort: sortBy, Associations: q.snap.Associations()})
}

func (c *Console) computer(w http.ResponseWriter, r *http.Request, q *req) error {
	name := r.URL.Query().Get("name")
	views, err := c.computerViews(q.snap)
	if err != nil {
		return err
	}
	for _, v := range views {
		if v.Name == name {
			return c.show(w, q, "computer", "Computer", v)
		}
	}
	c.errorPage(w, http.StatusNotFound, "no such computer")
	return nil
}

// fileView is one entry of the record browser.
type fileView struct {
	Name    string // valid UTF-8 for display; invalid bytes shown as U+FFFD
	RawName bool   // the stored name is not valid UTF-8
	Path    string // for the link into a directory
	Dir     bool
	Type    string
	Size    uint64
	MTime   time.Time
}

type recordData struct {
	ID, Computer string
	Dir          string
	Parents      []fileView
	Entries      []fileView
	Truncated    bool
}

// maxListed bounds the entries one directory page lists.
const maxListed = 5000

// record lists one directory of a record, walking its trees with the one
// manifest.Walker and descending only along the asked path.
func (c *Console) record(w http.ResponseWriter, r *http.Request, q *req) error {
	id, err := cas.ParseID(r.URL.Query().Get("id"))
	if err != nil {
		c.errorPage(w, http.StatusNotFound, "no such record")
		return nil
	}
	recs, err := c.opts.Repo.Records()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(recs, func(ri repo.RecordInfo) bool { return ri.ID == id })
	if i < 0 {
		c.errorPage(w, http.StatusNotFound, "no such record")
		return nil
	}
	rec := recs[i]
	dir := path.Clean("/" + r.URL.Query().Get("dir"))[1:]
	d := recordData{ID: rec.ID.String(), Computer: rec.Computer, Dir: dir}
	errStop := errors.New("listed")
	if c.opts.Reading != nil {
		defer c.opts.Reading()()
	}
	walker := manifest.Walker{Load: c.opts.Repo, Entry: func(parent string, e *manifest.Entry) error {
		p := path.Join(parent, e.Name)
		if parent == dir {
			if len(d.Entries) >= maxListed {
				d.Truncated = true
				return errStop
			}
			d.Entries = append(d.Entries, viewOf(p, e))
			return manifest.SkipTree
		}
		if e.Type == manifest.TypeDir && (dir == p || strings.HasPrefix(dir, p+"/")) {
			return nil
		}
		return manifest.SkipTree
	}}
	if err := walker.Walk(r.Context(), rec.Tree); err != nil && !errors.Is(err, errStop) && !errors.Is(err, context.Canceled) {
		return err
	}
	if dir != "" {
		parts := strings.Split(dir, "/")
		for j := range parts {
			d.Parents = append(d.Parents, fileView{Name: display(parts[j]), Path: strings.Join(parts[:j+1], "/"), Dir: true})
		}
	}
	return c.show(w, q, "record", "Record", d)
}

func viewOf(p string, e *manifest.Entry) fileView {
	return fileView{Name: display(e.Name), RawName: !utf8.ValidString(e.Name), Path: p, Dir: e.Type == manifest.TypeDir,
		Type: string(e.Type), Size: e.Size, MTime: time.Unix(0, e.MTimeNs).UTC()}
}

func display(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

type tokensData struct {
	Tokens       []access.Token
	Associations []access.Association
	Now          time.Time
}

func (c *Console) tokens(w http.ResponseWriter, r *http.Request, q *req) error {
	return c.show(w, q, "tokens", "Tokens", tokensData{Tokens: q.snap.Tokens(), Associations: q.snap.Associations(), Now: c.opts.Now()})
}
