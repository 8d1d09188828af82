package corpus

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// OrgOptions describe a generated organisation.
type OrgOptions struct {
	Out   string // DIR: profiles go to DIR/home/userNN
	Users int
	Size  int64 // total bytes of file data across all users (approximate)
	Seed  uint64
}

// OrgInfo summarises a generated or mutated corpus.
type OrgInfo struct {
	Root      string   `json:"root"`  // DIR (capture with --root DIR)
	Users     []string `json:"users"` // user01, user02, ...
	Files     int      `json:"files"`
	Bytes     int64    `json:"bytes"`
	ZstdRatio float64  `json:"zstd_ratio"` // 0 when not measured

	Dirs     int `json:"dirs"`     // directories under DIR/home, DIR/home included
	Symlinks int `json:"symlinks"` //

	// GenerateOrg only.
	DistinctBytes int64               `json:"distinct_bytes,omitempty"` // bytes of distinct files (each shared file once)
	Kinds         map[string]int64    `json:"kinds,omitempty"`          // bytes by origin: org, dept, unique, edited, config
	Classes       map[string]int64    `json:"classes,omitempty"`        // bytes by content: text, binary, compressed (mixed files split by recipe)
	Departments   map[string][]string `json:"departments,omitempty"`    // department → its users

	// MutateOrg only.
	Added        int   `json:"added,omitempty"`         // files created
	Modified     int   `json:"modified,omitempty"`      // files edited, appended to or rewritten
	Deleted      int   `json:"deleted,omitempty"`       // files removed
	ChangedBytes int64 `json:"changed_bytes,omitempty"` // bytes of the added and modified files (what a capture re-reads)
}

// Now is the corpus' "now": generated modification times fall in the
// three years before it. MutateOrg moves a week past the newest mtime.
var Now = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

const corpusSpan = 3 * 365 * 24 * time.Hour

// corpusRatioSample is how many bytes GenerateOrg compresses to measure
// ZstdRatio (every k-th 1 MiB block when the corpus is larger).
const corpusRatioSample = 256 << 20

// GenerateOrg writes a deterministic organisation: DIR/home/user01 ...
// userNN, each a Linux-like profile (Documents, Desktop, Pictures,
// Downloads, .config, .local/share, sometimes .cache, .ssh). DIR/home must
// not exist yet. Per user, by bytes:
//
//   - org (35%): files identical in every profile, at the same paths —
//     installers (the largest file, up to Size/Users/6, capped at 400 MiB),
//     templates, policies, a handbook, tools, fonts, wallpapers;
//   - dept (20%): files shared by the members of one of 2-4 departments
//     (at most Users-1, so with 3+ users some files are shared by more than
//     one user but not all): spreadsheets, reports, a large dataset, decks;
//   - unique (about 25%): the user's own documents, photos, downloads,
//     projects, a large mailbox or video; odd names (spaces, unicode,
//     leading dash, a 200-byte name, an empty file);
//   - edited (about 10%): copies of org and dept text/binary files with
//     bytes inserted and deleted mid-file, so only content-defined chunking
//     finds what they share with the original;
//   - config (10%): dozens of 1-8 KiB config files (json, ini, xml, yaml,
//     prefs.js), shell history, ssh keys, logs, databases and caches; the
//     shell start-up files are identical for everyone.
//
// The contents come from gen.go's material (spliced real text, pieces of
// real executables, gzip of those, real .gz/.png files): no random filler.
// Compressed files (.docx, .jpg, .zip) are gzip streams; installers, PDFs
// and mailboxes mix text, binary and gzip segments. Modes are 0644, 0600
// (private files, keys), 0755 (tools, scripts) and 0700 directories
// (profiles, .ssh, keyrings, Private); mtimes are spread over the three
// years before Now (logs and configs recent), copies of a shared file
// keep its mtime, directory mtimes are their newest entry's. Each profile
// has relative symlinks (to a file, to a directory, one dangling) and
// empty directories. The same options on the same machine give the same
// tree: paths, bytes, modes and mtimes.
//
// ZstdRatio is measured on up to 256 MiB of 1 MiB blocks sampled evenly
// across the corpus (MeasureRatio).
func GenerateOrg(o OrgOptions) (*OrgInfo, error) {
	if o.Users < 1 || o.Users > 99 {
		return nil, fmt.Errorf("corpus: %d users, want 1-99", o.Users)
	}
	if o.Size/int64(o.Users) < 1<<20 {
		return nil, fmt.Errorf("corpus: size %d is under 1 MiB per user", o.Size)
	}
	if o.Out == "" {
		return nil, fmt.Errorf("corpus: no output directory")
	}
	home := filepath.Join(o.Out, "home")
	if _, err := os.Lstat(home); err == nil {
		return nil, fmt.Errorf("corpus: %s already exists", home)
	}
	c, err := loadMaterial()
	if err != nil {
		return nil, err
	}
	p := planCorpus(c, o)
	if err := p.write(c, o.Out, o.Seed); err != nil {
		return nil, err
	}
	info := p.info(o.Out)
	r, err := MeasureRatio(home, corpusRatioSample)
	if err != nil {
		return nil, err
	}
	info.ZstdRatio = r.Total()
	return info, nil
}

// ---- plan ----

type corpusKind int

const (
	kindOrg corpusKind = iota
	kindDept
	kindUnique
	kindEdited
	kindConfig
	numKinds
)

var kindNames = [numKinds]string{"org", "dept", "unique", "edited", "config"}

// content is how a file's bytes are made.
type content int

const (
	ctText    content = iota // spliced source and documentation
	ctBinary                 // pieces of executables
	ctZip                    // gzip of mostly text (documents, archives)
	ctMedia                  // gzip of mostly binary (photos, video)
	ctPacked                 // a real .gz or .png copied whole
	ctMixed                  // text, binary and gzip segments (pdf, installers, mailboxes)
	ctConfig                 // json / ini / xml / yaml / prefs.js / shell, by extension
	ctLog                    // timestamped log lines
	ctHistory                // shell history
	ctKey                    // base64 key material
)

func (ct content) class() string {
	switch ct {
	case ctBinary:
		return "binary"
	case ctZip, ctMedia, ctPacked:
		return "compressed"
	case ctMixed:
		return "mixed"
	}
	return "text"
}

type corpusFile struct {
	rel    string // slash path relative to DIR
	kind   corpusKind
	ct     content
	mix    [3]int // ctMixed: weights of text, binary, gzip segments
	size   int64
	mode   fs.FileMode
	mtime  time.Time
	id     uint64 // content stream
	packed string // ctPacked: the real file
	src    int    // index of the file this is a copy or an edited copy of; -1 if none
	edits  []corpusEdit
}

// corpusEdit replaces del bytes at offset off of the source by ins new bytes.
type corpusEdit struct{ off, del, ins int64 }

type corpusLink struct {
	rel, target string
	mtime       time.Time
}

type corpusDir struct {
	mode  fs.FileMode
	mtime time.Time
}

type corpusPlan struct {
	org    string
	users  []string
	depts  []string
	deptOf []int
	files  []corpusFile
	links  []corpusLink
	dirs   map[string]*corpusDir
	used   map[string]bool
}

type planner struct {
	r          *rand.Rand
	c          *material
	p          *corpusPlan
	packed     []int
	nextPacked int
	medMax     int64
	bigMax     int64
	eff        [3]float64 // bytes planned so far as text, binary, compressed (mixed files split)
}

// effTarget is the byte share of text, binary and compressed data the
// planner steers towards (zstd ratio about 1.8 on this machine's material).
var effTarget = [3]float64{0.45, 0.32, 0.23}

// shares returns how ct's bytes split into text, binary and compressed.
func shares(ct content, mix [3]int) [3]float64 {
	switch ct {
	case ctBinary:
		return [3]float64{0, 1, 0}
	case ctZip, ctMedia, ctPacked:
		return [3]float64{0, 0, 1}
	case ctMixed:
		t := float64(mix[0] + mix[1] + mix[2])
		return [3]float64{float64(mix[0]) / t, float64(mix[1]) / t, float64(mix[2]) / t}
	}
	return [3]float64{1, 0, 0}
}

// item is a kind of file the planner places: a directory and a name
// template (see expand), how it is made, and its size range.
type item struct {
	dir, name string
	ct        content
	mix       [3]int
	mode      fs.FileMode
	size      sizeRange
	w         int
}

type sizeRange int

const (
	szAny    sizeRange = iota // 60% 1-64 KiB, else 64 KiB to medMax
	szSmall                   // 1-64 KiB
	szMedium                  // 64 KiB to medMax
	szPhoto                   // 256 KiB to 512 KiB-8 MiB (medMax)
	szConfig                  // 1-8 KiB
	szLarge                   // medMax to 3*medMax
)

var (
	mixPDF       = [3]int{65, 10, 25}
	mixInstaller = [3]int{5, 80, 15}
	mixDeck      = [3]int{25, 30, 45}
	mixDB        = [3]int{40, 60, 0}
	mixMail      = [3]int{80, 5, 15}
	mixPackage   = [3]int{10, 75, 15}
	mixCache     = [3]int{40, 40, 20}
)

var orgItems = []item{
	{dir: "Downloads/Installers", name: "{Product}Setup-{ver}-x64.msi", ct: ctMixed, mix: mixInstaller, size: szLarge, w: 2},
	{dir: "Downloads/Installers", name: "{product}-{ver}-linux-x86_64.run", ct: ctMixed, mix: mixInstaller, mode: 0o755, size: szMedium, w: 1},
	{dir: "Documents/{Org}/Templates", name: "{Org} {Topic}.dotx", ct: ctZip, size: szSmall, w: 2},
	{dir: "Documents/{Org}/Templates", name: "{Topic} Presentation.potx", ct: ctZip, size: szMedium, w: 1},
	{dir: "Documents/{Org}/Templates", name: "{Topic} Tracker.xltx", ct: ctZip, size: szAny, w: 1},
	{dir: "Documents/{Org}/Policies", name: "{Topic} Policy v{n}.pdf", ct: ctMixed, mix: mixPDF, size: szAny, w: 3},
	{dir: "Documents/{Org}/Handbook", name: "{topic}-{n}.html", ct: ctText, size: szAny, w: 2},
	{dir: "Documents/{Org}/Handbook", name: "{Topic} FAQ.md", ct: ctText, size: szSmall, w: 1},
	{dir: ".local/share/{org}/bin", name: "{product}-{word}", ct: ctBinary, mode: 0o755, size: szMedium, w: 2},
	{dir: ".local/share/{org}/lib", name: "lib{word}.so.{n}", ct: ctBinary, size: szMedium, w: 1},
	{dir: ".local/share/fonts", name: "{Org}Sans-{style}.ttf", ct: ctBinary, size: szAny, w: 1},
	{dir: "Pictures/{Org} Wallpapers", name: "wallpaper-{n}.jpg", ct: ctMedia, size: szPhoto, w: 1},
}

var deptItems = []item{
	{dir: "Documents/{Dept}", name: "{Topic} {q} {year}.xlsx", ct: ctZip, size: szAny, w: 2},
	{dir: "Documents/{Dept}/{Topic}", name: "{Topic} Report {year}.docx", ct: ctZip, size: szSmall, w: 2},
	{dir: "Documents/{Dept}/Data", name: "{topic}_{yyyymm}.csv", ct: ctText, size: szMedium, w: 3},
	{dir: "Documents/{Dept}/Data", name: "{topic}-export-{n}.json", ct: ctText, size: szAny, w: 1},
	{dir: "Documents/{Dept}/{Topic}", name: "{Topic} Review {q}.pptx", ct: ctMixed, mix: mixDeck, size: szMedium, w: 2},
	{dir: "Documents/{Dept}", name: "{Topic} Guidelines.pdf", ct: ctMixed, mix: mixPDF, size: szAny, w: 2},
	{dir: "Documents/{Dept}/Scripts", name: "{topic}_import.py", ct: ctText, mode: 0o755, size: szSmall, w: 1},
	{dir: "Documents/{Dept}/Data", name: "{topic}.sqlite", ct: ctMixed, mix: mixDB, size: szMedium, w: 1},
	{dir: "Documents/{Dept}/Archive/{year}", name: "{Topic} meeting notes {date}.md", ct: ctText, size: szSmall, w: 2},
	{dir: "Documents/{Dept}/Archive/{year}", name: "{Topic} {year}.pdf", ct: ctMixed, mix: mixPDF, size: szAny, w: 1},
}

var uniqueItems = []item{
	{dir: "Documents/Reports", name: "{Topic} report {date}.docx", ct: ctZip, size: szAny, w: 2},
	{dir: "Documents/Notes", name: "{topic} {date}.txt", ct: ctText, size: szSmall, w: 3},
	{dir: "Documents/Notes", name: "{Topic}.md", ct: ctText, size: szSmall, w: 2},
	{dir: "Documents/Projects/{Project}", name: "{word}.py", ct: ctText, size: szSmall, w: 2},
	{dir: "Documents/Projects/{Project}/src", name: "{word}.go", ct: ctText, size: szSmall, w: 2},
	{dir: "Documents/Projects/{Project}", name: "{word}.sh", ct: ctText, mode: 0o755, size: szSmall, w: 1},
	{dir: "Documents/Invoices/{year}", name: "Invoice-{n4}.pdf", ct: ctMixed, mix: mixPDF, size: szAny, w: 2},
	{dir: "Documents/Archive/{year}", name: "{topic}-{year}.zip", ct: ctZip, size: szMedium, w: 1},
	{dir: "Documents/Archive/{year}", name: "{topic}.tar.gz", ct: ctPacked, size: szAny, w: 1},
	{dir: "Documents/Spreadsheets", name: "{Topic} {year}.xlsx", ct: ctZip, size: szAny, w: 1},
	{dir: "Documents/Spreadsheets", name: "{topic}.csv", ct: ctText, size: szAny, w: 2},
	{dir: "Documents/Private", name: "{Topic} (private).txt", ct: ctText, mode: 0o600, size: szSmall, w: 1},
	{dir: "Pictures/{year}", name: "IMG_{n4}.jpg", ct: ctMedia, size: szPhoto, w: 2},
	{dir: "Pictures/Screenshots", name: "Screenshot from {date} {time}.png", ct: ctPacked, size: szAny, w: 1},
	{dir: "Downloads", name: "{topic}-{ver}.pdf", ct: ctMixed, mix: mixPDF, size: szAny, w: 2},
	{dir: "Downloads", name: "{product}-{ver}.zip", ct: ctZip, size: szMedium, w: 1},
	{dir: "Downloads", name: "{word}-{ver}.tar.gz", ct: ctPacked, size: szAny, w: 1},
	{dir: "Downloads", name: "{product}_{ver}_amd64.deb", ct: ctMixed, mix: mixPackage, size: szMedium, w: 1},
	{dir: "Desktop", name: "{Topic}.docx", ct: ctZip, size: szAny, w: 1},
	{dir: "Desktop", name: "{topic} todo.txt", ct: ctText, size: szSmall, w: 1},
}

var configMediumItems = []item{
	{dir: ".local/share/{app}/logs", name: "{word}.log", ct: ctLog, size: szMedium, w: 2},
	{dir: ".local/share/{app}", name: "{word}.db", ct: ctMixed, mix: mixDB, size: szMedium, w: 2},
	{dir: ".local/share", name: "recently-used.xbel", ct: ctConfig, size: szAny, w: 1},
}

var cacheItems = []item{
	{dir: ".cache/thumbnails/normal", name: "{hex32}.png", ct: ctPacked, size: szSmall, w: 3},
	{dir: ".cache/{app}/Cache_Data", name: "{hex16}_0", ct: ctMixed, mix: mixCache, size: szAny, w: 3},
	{dir: ".cache/fontconfig", name: "{hex32}-le64.cache-9", ct: ctBinary, size: szSmall, w: 1},
}

var (
	orgNames     = []string{"Contoso", "Fabrikam", "Northwind", "Tailspin", "Woodgrove", "Litware", "Adatum"}
	deptNames    = []string{"Finance", "Engineering", "Sales", "Human Resources", "Legal", "Marketing", "Operations", "Research"}
	corpTopics   = []string{"Budget", "Roadmap", "Quarterly Review", "Sales Forecast", "Onboarding", "Security Audit", "Vendor Contracts", "Customer Survey", "Marketing Plan", "Hiring Plan", "Expense Claims", "Travel", "Compliance", "Inventory", "Payroll", "Release Notes", "Incident Review", "Training", "Capacity Planning", "Pricing", "Procurement", "Risk Register", "Board Minutes", "Annual Report", "Product Launch", "Partner Program", "Support Metrics", "Data Retention", "Office Move", "Benefits"}
	corpProducts = []string{"OfficeSuite", "VPNClient", "Workspace", "Teams", "Zoom", "AcrobatReader", "JavaRuntime", "PrinterDrivers", "EndpointAgent", "Firefox", "Slack", "Backup", "Python", "NodeJS", "Chrome", "Putty", "WinSCP", "Citrix"}
	corpProjects = []string{"Phoenix", "Atlas", "Orion", "Hermes", "Nimbus", "Apollo", "Falcon", "Zephyr", "Mercury", "Cobalt"}
	corpStyles   = []string{"Regular", "Bold", "Italic", "Light", "Medium", "BoldItalic"}
	corpApps     = []string{"Code/User", "libreoffice/4/user", "evolution/sources", "gtk-3.0", "pulse", "autostart", "teams-for-linux", "gnome-shell", "nautilus", "thunderbird", "htop", "git", "fontconfig", "keepassxc", "remmina", "ibus", "menus", "vlc", "gedit", "Slack"}
	configNames  = []string{"settings.json", "keybindings.json", "prefs.js", "registrymodifications.xcu", "{word}.json", "{word}.ini", "{word}.conf", "{word}.xml", "{word}.yaml", "{word}.desktop", "{word}.toml", "{word}rc"}
)

// expand replaces each {placeholder} of t by a fresh random value.
func (pl *planner) expand(t string, user int) string {
	return expandName(pl.r, pl.c, t, pl.p.org, pl.deptName(user))
}

func (pl *planner) deptName(user int) string {
	if user < 0 || len(pl.p.deptOf) == 0 {
		return "Shared"
	}
	return pl.p.depts[pl.p.deptOf[user]]
}

func expandName(r *rand.Rand, c *material, t, org, dept string) string {
	if !strings.Contains(t, "{") {
		return t
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			b.WriteString(t)
			return b.String()
		}
		j := strings.IndexByte(t[i:], '}')
		b.WriteString(t[:i])
		key := t[i+1 : i+j]
		t = t[i+j+1:]
		year := 2023 + r.IntN(4)
		switch key {
		case "Org":
			b.WriteString(org)
		case "org":
			b.WriteString(strings.ToLower(org))
		case "Dept":
			b.WriteString(dept)
		case "Topic":
			b.WriteString(pick(r, corpTopics))
		case "topic":
			b.WriteString(strings.ToLower(strings.ReplaceAll(pick(r, corpTopics), " ", "_")))
		case "Product":
			b.WriteString(pick(r, corpProducts))
		case "product":
			b.WriteString(strings.ToLower(pick(r, corpProducts)))
		case "Project":
			b.WriteString(pick(r, corpProjects))
		case "style":
			b.WriteString(pick(r, corpStyles))
		case "app":
			b.WriteString(strings.ToLower(pick(r, corpApps)))
		case "ver":
			fmt.Fprintf(&b, "%d.%d.%d", 1+r.IntN(12), r.IntN(20), r.IntN(100))
		case "year":
			fmt.Fprintf(&b, "%d", year)
		case "q":
			fmt.Fprintf(&b, "Q%d", 1+r.IntN(4))
		case "n":
			fmt.Fprintf(&b, "%d", 1+r.IntN(99))
		case "n4":
			fmt.Fprintf(&b, "%04d", r.IntN(10000))
		case "date":
			fmt.Fprintf(&b, "%d-%02d-%02d", year, 1+r.IntN(12), 1+r.IntN(28))
		case "time":
			fmt.Fprintf(&b, "%02d-%02d-%02d", r.IntN(24), r.IntN(60), r.IntN(60))
		case "yyyymm":
			fmt.Fprintf(&b, "%d%02d", year, 1+r.IntN(12))
		case "word":
			b.WriteString(strings.ToLower(pick(r, c.words)))
		case "hex16":
			fmt.Fprintf(&b, "%016x", r.Uint64())
		case "hex32":
			fmt.Fprintf(&b, "%016x%016x", r.Uint64(), r.Uint64())
		default:
			b.WriteString(key)
		}
	}
}

func planCorpus(c *material, o OrgOptions) *corpusPlan {
	r := rand.New(rand.NewPCG(o.Seed, 0x6f7267706c616e)) // "orgplan"
	p := &corpusPlan{dirs: map[string]*corpusDir{}, used: map[string]bool{}}
	pl := &planner{r: r, c: c, p: p, packed: r.Perm(len(c.packed))}
	p.org = pick(r, orgNames)
	for i := 1; i <= o.Users; i++ {
		p.users = append(p.users, fmt.Sprintf("user%02d", i))
	}
	// Departments: 2-4, but at most Users-1 so that with three or more
	// users some department has several members and none has everyone.
	nd := max(1, min(2+r.IntN(3), o.Users-1))
	names := slices.Clone(deptNames)
	r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	p.depts = names[:nd]
	p.deptOf = make([]int, o.Users)
	for k, u := range r.Perm(o.Users) {
		p.deptOf[u] = k % nd
	}

	per := o.Size / int64(o.Users)
	pl.medMax = min(max(per/40, 128<<10), 8<<20)
	pl.bigMax = min(max(per/6, 1<<20), 400<<20)
	orgB, deptB, confB, editB := per*35/100, per*20/100, per*10/100, per*10/100

	all := make([]int, o.Users)
	for i := range all {
		all[i] = i
	}
	p.addDir("home", 0o755)
	for u := range p.users {
		p.addDir(p.home(u), 0o700)
		for _, d := range []string{"Documents", "Desktop", "Pictures", "Downloads", ".config", ".local/share"} {
			p.addDir(p.home(u)+"/"+d, 0o755)
		}
	}

	// Organisation-wide files: the biggest installer first.
	left := orgB
	if big := pl.bigMax * int64(60+r.IntN(41)) / 100; big <= orgB/2 {
		left -= pl.shared(orgItems[0], big, all, kindOrg)
	}
	left -= pl.fillShared(orgItems, left, all, kindOrg)

	// Shell start-up files every profile gets from /etc/skel: identical.
	skel := int64(0)
	for _, s := range []struct {
		name string
		size int64
	}{{".bashrc", 3771}, {".profile", 807}, {".bash_logout", 220}, {".config/user-dirs.dirs", 633}} {
		skel += pl.shared(item{dir: ".", name: s.name, ct: ctConfig}, s.size, all, kindConfig)
	}

	// Departments.
	for d := range p.depts {
		var members []int
		for u, du := range p.deptOf {
			if du == d {
				members = append(members, u)
			}
		}
		left := deptB
		if big := pl.bigMax * int64(40+r.IntN(41)) / 100; big <= deptB/2 {
			left -= pl.shared(item{dir: "Documents/{Dept}/Data", name: "{topic}_full_{yyyymm}.csv", ct: ctText}, big, members, kindDept)
		}
		pl.fillShared(deptItems, left, members, kindDept)
	}

	// Each user's own files.
	nOrgDept := len(p.files)
	for u := range p.users {
		used := pl.planConfig(u, confB-skel)
		used += pl.planEdited(u, editB, nOrgDept)
		pl.planUnique(u, per-orgB-deptB-used-skel)
	}
	p.finishDirs(r)
	return p
}

func (p *corpusPlan) home(u int) string { return "home/" + p.users[u] }

func (p *corpusPlan) addDir(rel string, mode fs.FileMode) {
	rel = path.Clean(rel)
	if d, ok := p.dirs[rel]; ok {
		if mode != 0 {
			d.mode = mode
		}
		return
	}
	if parent := path.Dir(rel); parent != "." {
		p.addDir(parent, 0)
	}
	if mode == 0 {
		mode = 0o755
	}
	p.dirs[rel] = &corpusDir{mode: mode}
}

// free returns prof (a path inside a profile), changed by a " (n)" suffix
// if needed so that it is unused in every profile of users.
func (p *corpusPlan) free(prof string, users []int) string {
	ext := path.Ext(prof)
	if len(ext) > 6 || strings.ContainsAny(ext, " ()") {
		ext = ""
	}
	stem := strings.TrimSuffix(prof, ext)
	cand := prof
	for n := 2; ; n++ {
		ok := true
		for _, u := range users {
			if p.used[p.home(u)+"/"+cand] || p.dirs[p.home(u)+"/"+cand] != nil {
				ok = false
				break
			}
		}
		if ok {
			return cand
		}
		cand = fmt.Sprintf("%s (%d)%s", stem, n, ext)
	}
}

func (pl *planner) add(f corpusFile) int {
	p := pl.p
	for k, s := range shares(f.ct, f.mix) {
		pl.eff[k] += s * float64(f.size)
	}
	p.used[f.rel] = true
	p.addDir(path.Dir(f.rel), 0)
	f.id = uint64(len(p.files))
	if f.mode == 0 {
		f.mode = 0o644
	}
	p.files = append(p.files, f)
	return len(p.files) - 1
}

// randTime returns a whole second in the span before Now.
func randTime(r *rand.Rand, span time.Duration) time.Time {
	return Now.Add(-time.Duration(r.Int64N(int64(span/time.Second))) * time.Second)
}

func (pl *planner) size(s sizeRange) int64 {
	r := pl.r
	switch s {
	case szSmall:
		return logUniform(r, 1<<10, 64<<10)
	case szMedium:
		return logUniform(r, 64<<10, pl.medMax)
	case szPhoto:
		return logUniform(r, 256<<10, max(min(8<<20, pl.medMax), 512<<10))
	case szConfig:
		return logUniform(r, 1<<10, 8<<10)
	case szLarge:
		return logUniform(r, pl.medMax, 3*pl.medMax)
	}
	if r.IntN(10) < 6 {
		return logUniform(r, 1<<10, 64<<10)
	}
	return logUniform(r, 64<<10, pl.medMax)
}

// packedFile returns the next unused real compressed file of at most size
// bytes with extension ext ("" for any), or -1.
func (pl *planner) packedFile(size int64, ext string) int {
	for tries := 0; tries < 64 && pl.nextPacked < len(pl.packed); tries++ {
		i := pl.packed[pl.nextPacked]
		pf := pl.c.packed[i]
		if pf.size <= size && (ext == "" || filepath.Ext(pf.path) == ext) {
			pl.nextPacked++
			return i
		}
		if ext == "" || filepath.Ext(pf.path) == ext {
			pl.nextPacked++ // too big: skip it for good, as gen.go does
		} else if tries > 32 {
			break
		}
	}
	return -1
}

// file fills in a file of item it for user u (the first of users, who
// share it) and adds it.
func (pl *planner) file(it item, size int64, users []int, kind corpusKind) corpusFile {
	r := pl.r
	f := corpusFile{kind: kind, ct: it.ct, mix: it.mix, size: size, mode: it.mode, src: -1}
	prof := path.Clean(pl.expand(it.dir, users[0]) + "/" + pl.expand(it.name, users[0]))
	if f.ct == ctPacked {
		want := ".gz"
		if strings.HasSuffix(prof, ".png") {
			want = ".png"
		}
		if i := pl.packedFile(size, want); i >= 0 {
			f.packed, f.size = pl.c.packed[i].path, pl.c.packed[i].size
		} else if want == ".png" {
			f.ct = ctMedia
		} else {
			f.ct = ctZip
		}
	}
	f.rel = pl.p.free(prof, users)
	switch {
	case f.ct == ctLog || f.ct == ctHistory:
		f.mtime = randTime(r, 3*24*time.Hour)
	case kind == kindConfig:
		f.mtime = randTime(r, 120*24*time.Hour)
	default:
		f.mtime = randTime(r, corpusSpan)
	}
	return f
}

// shared plans one file of it for every user in users (the first gets the
// generated bytes, the others copies) and returns its size.
func (pl *planner) shared(it item, size int64, users []int, kind corpusKind) int64 {
	f := pl.file(it, size, users, kind)
	prof := f.rel
	f.rel = pl.p.home(users[0]) + "/" + prof
	master := pl.add(f)
	for _, u := range users[1:] {
		cp := f
		cp.rel = pl.p.home(u) + "/" + prof
		cp.src = master
		pl.add(cp)
	}
	return f.size
}

// pickItem picks an item by weight, favouring (by 4x) items whose main
// kind of data is below its target share and avoiding those above it.
func (pl *planner) pickItem(items []item) item {
	all := pl.eff[0] + pl.eff[1] + pl.eff[2]
	ws := make([]int, len(items))
	total := 0
	for i, it := range items {
		sh := shares(it.ct, it.mix)
		main := 0
		for k := range sh {
			if sh[k] > sh[main] {
				main = k
			}
		}
		ws[i] = 4 * it.w
		if all > 0 {
			switch d := pl.eff[main]/all - effTarget[main]; {
			case d > 0.02:
				ws[i] = it.w
			case d < -0.02:
				ws[i] = 16 * it.w
			}
		}
		total += ws[i]
	}
	k := pl.r.IntN(total)
	for i, it := range items {
		if k -= ws[i]; k < 0 {
			return it
		}
	}
	return items[len(items)-1]
}

// fill plans files of items until budget bytes are used, calling place for
// each; it returns the bytes used.
func (pl *planner) fill(items []item, budget int64, place func(item, int64) int64) int64 {
	used := int64(0)
	for budget-used > 0 {
		it := pl.pickItem(items)
		s := min(pl.size(it.size), budget-used)
		if budget-used-s < 1<<10 {
			s = budget - used
		}
		used += place(it, s)
	}
	return used
}

func (pl *planner) fillShared(items []item, budget int64, users []int, kind corpusKind) int64 {
	return pl.fill(items, budget, func(it item, s int64) int64 { return pl.shared(it, s, users, kind) })
}

func (pl *planner) unique(it item, size int64, u int, kind corpusKind) int64 {
	f := pl.file(it, size, []int{u}, kind)
	f.rel = pl.p.home(u) + "/" + f.rel
	pl.add(f)
	return f.size
}

// planConfig plans user u's dot-files: history, ssh, dozens of small
// config files, then logs, databases and caches up to budget.
func (pl *planner) planConfig(u int, budget int64) int64 {
	r, p := pl.r, pl.p
	home := p.home(u)
	p.addDir(home+"/.ssh", 0o700)
	p.addDir(home+"/.local/share/keyrings", 0o700)
	p.addDir(home+"/.local/share/Trash/files", 0)
	p.addDir(home+"/.local/share/Trash/info", 0)
	used := int64(0)
	for _, it := range []item{
		{dir: ".", name: ".bash_history", ct: ctHistory, mode: 0o600, size: szSmall},
		{dir: ".", name: ".gitconfig", ct: ctConfig, size: szConfig},
		{dir: ".ssh", name: "config", ct: ctConfig, mode: 0o600, size: szConfig},
		{dir: ".ssh", name: "known_hosts", ct: ctKey, size: szConfig},
		{dir: ".ssh", name: "id_ed25519", ct: ctKey, mode: 0o600},
		{dir: ".ssh", name: "id_ed25519.pub", ct: ctKey},
		{dir: ".local/share/keyrings", name: "login.keyring", ct: ctBinary, mode: 0o600, size: szConfig},
		{dir: ".local/bin", name: "{word}.sh", ct: ctConfig, mode: 0o755, size: szConfig},
		{dir: ".local/share/{app}", name: "{word}.sqlite", ct: ctMixed, mix: mixDB},
	} {
		s := pl.size(it.size)
		switch it.name {
		case "id_ed25519":
			s = 411
		case "id_ed25519.pub":
			s = 98
		case "{word}.sqlite": // history, cookies: what MutateOrg changes in place
			s = logUniform(r, 16<<10, 48<<10)
		}
		if used+s > budget {
			break
		}
		used += pl.unique(it, s, u, kindConfig)
	}
	for n := 30 + r.IntN(50); n > 0; n-- {
		it := item{dir: ".config/" + pick(r, corpApps), name: pick(r, configNames), ct: ctConfig}
		if r.IntN(4) == 0 {
			it.mode = 0o600
		}
		s := pl.size(szConfig)
		if used+s > budget {
			break
		}
		used += pl.unique(it, s, u, kindConfig)
	}
	items := configMediumItems
	if r.IntN(3) > 0 { // most users have a cache
		items = append(slices.Clone(items), cacheItems...)
	}
	if budget > used {
		used += pl.fill(items, budget-used, func(it item, s int64) int64 { return pl.unique(it, s, u, kindConfig) })
	}
	return used
}

// planEdited plans user u's edited copies of org and dept files (indexes
// below nShared) up to about budget bytes and returns their size.
func (pl *planner) planEdited(u int, budget int64, nShared int) int64 {
	r, p := pl.r, pl.p
	home := p.home(u) + "/"
	var cands []int
	for i := range p.files[:nShared] {
		f := &p.files[i]
		if strings.HasPrefix(f.rel, home) && f.kind != kindConfig && f.size >= 16<<10 &&
			(f.ct == ctText || f.ct == ctBinary || f.ct == ctMixed) {
			cands = append(cands, i)
		}
	}
	used := int64(0)
	for _, k := range r.Perm(len(cands)) {
		src := p.files[cands[k]]
		if used+src.size > budget+budget/10 {
			continue
		}
		master := cands[k]
		if src.src >= 0 {
			master = src.src
		}
		f := corpusFile{kind: kindEdited, ct: src.ct, mix: src.mix, mode: src.mode, src: master}
		f.edits, f.size = planEdits(r, src.size)
		prof := strings.TrimPrefix(src.rel, home)
		dir, base := path.Split(prof)
		ext := path.Ext(base)
		stem := strings.TrimSuffix(base, ext)
		switch r.IntN(3) {
		case 0:
			dir = "Documents/Working/"
		case 1:
			dir = "Desktop/"
		}
		base = fmt.Sprintf(pick(r, []string{"%s - Copy%s", "%s (edited)%s", "%s v2%s", "%s (" + p.users[u] + ")%s", "%s draft%s"}), stem, ext)
		f.rel = home + p.free(path.Clean(dir+base), []int{u})
		f.mtime = src.mtime.Add(time.Duration(3600+r.Int64N(120*24*3600)) * time.Second)
		if f.mtime.After(Now) {
			f.mtime = Now.Add(-time.Duration(r.IntN(3600)) * time.Second)
		}
		pl.add(f)
		used += f.size
		if used >= budget {
			break
		}
	}
	return used
}

// planEdits plans 2-12 inserts and deletes in the middle 80% of a file of
// size bytes and returns them with the edited size.
func planEdits(r *rand.Rand, size int64) ([]corpusEdit, int64) {
	n := 2 + int(min(10, size/(4<<20)))
	offs := make([]int64, n)
	for i := range offs {
		offs[i] = size/10 + r.Int64N(size*8/10)
	}
	slices.Sort(offs)
	offs = slices.Compact(offs)
	maxLen := max(16, min(16<<10, size/50))
	kinds := make([]int, len(offs)) // 0 insert, 1 delete, 2 replace: at least one insert and one delete
	for i := range kinds {
		kinds[i] = i
		if i >= 2 {
			kinds[i] = r.IntN(3)
		}
	}
	r.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	var edits []corpusEdit
	out := size
	for i, off := range offs {
		e := corpusEdit{off: off}
		next := size
		if i+1 < len(offs) {
			next = offs[i+1]
		}
		if kinds[i] != 0 {
			e.del = min(logUniform(r, 16, maxLen), next-off)
		}
		if kinds[i] != 1 {
			e.ins = logUniform(r, 16, maxLen)
		}
		out += e.ins - e.del
		edits = append(edits, e)
	}
	return edits, out
}

// oddNames are placed in every profile, with the long name below.
var oddNames = []item{
	{dir: "Documents", name: "Résumé – Müller (final).docx", ct: ctZip, size: szSmall},
	{dir: "Documents", name: "日本語のメモ.txt", ct: ctText, size: szSmall},
	{dir: "Documents", name: "Ελληνικά σημειώσεις.md", ct: ctText, size: szSmall},
	{dir: "Documents", name: "Tom's budget & plan (v2) #1.xlsx", ct: ctZip, size: szSmall},
	{dir: "Desktop", name: "-notes.txt", ct: ctText, size: szSmall},
	{dir: "Desktop", name: "  leading and trailing spaces  .txt", ct: ctText, size: szSmall},
}

// planUnique plans user u's own files (exactly budget bytes), odd names,
// symlinks and empty directories.
func (pl *planner) planUnique(u int, budget int64) {
	r, p := pl.r, pl.p
	home := p.home(u)
	used := int64(0)
	for _, it := range oddNames {
		used += pl.unique(it, pl.size(it.size), u, kindUnique)
	}
	long := "Minutes of the extended steering committee meeting on the migration of all departmental file shares and user profiles to the new storage platform, with action items, owners and deadlines for the next review"
	used += pl.unique(item{dir: "Downloads", name: long[:196] + ".pdf", ct: ctMixed, mix: mixPDF}, pl.size(szSmall), u, kindUnique) // a 200-byte name
	used += pl.unique(item{dir: "Documents", name: "New Text Document.txt", ct: ctText}, 0, u, kindUnique)
	if big := pl.bigMax * int64(50+r.IntN(41)) / 100; big <= (budget-used)/2 {
		it := item{dir: "Documents/Outlook Files", name: "archive-{year}.pst", ct: ctMixed, mix: mixMail}
		if r.IntN(4) == 0 {
			it = item{dir: "Videos", name: "{Topic} recording {date}.mp4", ct: ctMedia}
		}
		used += pl.unique(it, big, u, kindUnique)
	}
	first := len(p.files)
	if budget > used {
		pl.fill(uniqueItems, budget-used, func(it item, s int64) int64 { return pl.unique(it, s, u, kindUnique) })
	}

	// Symlinks: Desktop shortcut to a document, a directory link, a tool
	// on PATH, and one whose target is gone.
	var docs []string
	for _, f := range p.files[first:] {
		if rest, ok := strings.CutPrefix(f.rel, home+"/Documents/"); ok && strings.Contains(rest, "/") {
			docs = append(docs, f.rel)
		}
	}
	link := func(rel, target string) {
		rel = home + "/" + p.free(rel, []int{u})
		p.addDir(path.Dir(rel), 0)
		p.used[rel] = true
		p.links = append(p.links, corpusLink{rel: rel, target: target, mtime: randTime(r, corpusSpan)})
	}
	if len(docs) > 0 {
		d := pick(r, docs)
		link("Desktop/"+path.Base(d), "../"+strings.TrimPrefix(d, home+"/"))
		link("Documents/Current", strings.TrimPrefix(path.Dir(d), home+"/Documents/"))
	}
	for _, f := range p.files {
		if strings.HasPrefix(f.rel, home+"/.local/share/") && strings.Contains(f.rel, "/bin/") {
			link(".local/bin/"+path.Base(f.rel), "../share/"+strings.TrimPrefix(f.rel, home+"/.local/share/"))
			break
		}
	}
	link("Desktop/Old share.lnk", "../Documents/Archive/moved-away.docx")

	for _, d := range []string{"Documents/New folder", "Music", "Templates", "Downloads/Temp", ".local/share/Trash/files"} {
		p.addDir(home+"/"+d, 0)
	}
	p.addDir(home+"/Documents/Private", 0o700)
}

// finishDirs gives every directory the mtime of its newest entry (a random
// one when empty).
func (p *corpusPlan) finishDirs(r *rand.Rand) {
	newest := map[string]time.Time{}
	bump := func(dir string, t time.Time) {
		if t.After(newest[dir]) {
			newest[dir] = t
		}
	}
	for _, f := range p.files {
		bump(path.Dir(f.rel), f.mtime)
	}
	for _, l := range p.links {
		bump(path.Dir(l.rel), l.mtime)
	}
	dirs := make([]string, 0, len(p.dirs))
	for d := range p.dirs {
		dirs = append(dirs, d)
	}
	// Deepest first, so a directory's mtime is known before its parent's.
	slices.SortFunc(dirs, func(a, b string) int {
		if c := strings.Count(b, "/") - strings.Count(a, "/"); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, d := range dirs {
		t, ok := newest[d]
		if !ok {
			t = randTime(r, corpusSpan)
		}
		p.dirs[d].mtime = t
		if parent := path.Dir(d); parent != "." {
			bump(parent, t)
		}
	}
}

func (p *corpusPlan) info(root string) *OrgInfo {
	info := &OrgInfo{Root: root, Users: p.users, Files: len(p.files), Dirs: len(p.dirs), Symlinks: len(p.links),
		Kinds: map[string]int64{}, Classes: map[string]int64{}, Departments: map[string][]string{}}
	for _, f := range p.files {
		info.Bytes += f.size
		info.Kinds[kindNames[f.kind]] += f.size
		for k, sh := range shares(f.ct, f.mix) {
			info.Classes[[3]string{"text", "binary", "compressed"}[k]] += int64(sh * float64(f.size))
		}
		if f.src < 0 || f.kind == kindEdited {
			info.DistinctBytes += f.size
		}
	}
	for u, d := range p.deptOf {
		info.Departments[p.depts[d]] = append(info.Departments[p.depts[d]], p.users[u])
	}
	return info
}

// ---- writing ----

func (p *corpusPlan) write(c *material, out string, seed uint64) error {
	dirs := make([]string, 0, len(p.dirs))
	for d := range p.dirs {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(out, filepath.FromSlash(d)), 0o755); err != nil {
			return fmt.Errorf("corpus: %w", err)
		}
	}
	// Generated files first (largest first), then copies and edited copies
	// of them. Each file's bytes depend only on the seed and its index.
	var gen, copies []int
	for i, f := range p.files {
		if f.src < 0 {
			gen = append(gen, i)
		} else {
			copies = append(copies, i)
		}
	}
	bySize := func(a, b int) int { return compareInt64(p.files[b].size, p.files[a].size) }
	slices.SortStableFunc(gen, bySize)
	slices.SortStableFunc(copies, bySize)
	pool := sync.Pool{New: func() any { return newCorpusWriter(c) }}
	for _, phase := range [][]int{gen, copies} {
		var g errgroup.Group
		g.SetLimit(runtime.GOMAXPROCS(0))
		for _, i := range phase {
			g.Go(func() error {
				w := pool.Get().(*corpusWriter)
				defer pool.Put(w)
				return w.writeFile(p, out, i, seed)
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	for _, l := range p.links {
		name := filepath.Join(out, filepath.FromSlash(l.rel))
		if err := os.Symlink(l.target, name); err != nil {
			return fmt.Errorf("corpus: %w", err)
		}
		if err := lchtimes(name, l.mtime); err != nil {
			return err
		}
	}
	for _, d := range dirs {
		name := filepath.Join(out, filepath.FromSlash(d))
		if err := os.Chmod(name, p.dirs[d].mode); err != nil {
			return fmt.Errorf("corpus: %w", err)
		}
		if err := os.Chtimes(name, p.dirs[d].mtime, p.dirs[d].mtime); err != nil {
			return fmt.Errorf("corpus: %w", err)
		}
	}
	return nil
}

func lchtimes(name string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("corpus: set times of %s: %w", name, err)
	}
	return nil
}

// corpusWriter makes file contents; one per goroutine.
type corpusWriter struct {
	w       *writer // gen.go's text and binary splicer
	out     *bufio.Writer
	scratch []byte
	in      []byte
	gz      *kgzip.Writer
	gzOut   bytes.Buffer
}

func newCorpusWriter(c *material) *corpusWriter {
	gz, _ := kgzip.NewWriterLevel(io.Discard, kgzip.BestSpeed)
	return &corpusWriter{w: newWriter(c), out: bufio.NewWriterSize(nil, 1<<20), gz: gz}
}

func contentRand(seed, id uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x636f6e74656e74, id)) // "content"
}

func (cw *corpusWriter) writeFile(p *corpusPlan, out string, i int, seed uint64) error {
	f := &p.files[i]
	name := filepath.Join(out, filepath.FromSlash(f.rel))
	var err error
	switch {
	case f.src >= 0 && f.kind != kindEdited:
		err = copyFile(filepath.Join(out, filepath.FromSlash(p.files[f.src].rel)), name, 0o600)
	case f.packed != "":
		var b []byte
		if b, err = os.ReadFile(f.packed); err == nil && int64(len(b)) != f.size {
			err = fmt.Errorf("%s changed size while generating", f.packed)
		}
		if err == nil {
			err = os.WriteFile(name, b, 0o600)
		}
	default:
		err = cw.create(name, func() error {
			r := contentRand(seed, f.id)
			if f.src >= 0 {
				return cw.editCopy(r, filepath.Join(out, filepath.FromSlash(p.files[f.src].rel)), f)
			}
			return cw.fill(r, spec{ct: f.ct, mix: f.mix, name: path.Base(f.rel), t: f.mtime}, f.size)
		})
	}
	if err == nil {
		err = os.Chmod(name, f.mode)
	}
	if err == nil {
		err = os.Chtimes(name, f.mtime, f.mtime)
	}
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	return nil
}

// create writes a new file through cw.out with fill.
func (cw *corpusWriter) create(name string, fill func() error) error {
	out, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cw.out.Reset(out)
	err = fill()
	if err == nil {
		err = cw.out.Flush()
	}
	cw.out.Reset(nil)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// editCopy writes the source file with f.edits applied.
func (cw *corpusWriter) editCopy(r *rand.Rand, src string, f *corpusFile) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return cw.applyEdits(r, in, f.edits, spec{ct: f.ct, mix: f.mix, name: path.Base(f.rel), t: f.mtime})
}

func (cw *corpusWriter) applyEdits(r *rand.Rand, in *os.File, edits []corpusEdit, s spec) error {
	if s.ct != ctBinary && s.ct != ctMixed {
		s.ct = ctText
	}
	pos := int64(0)
	for _, e := range edits {
		if _, err := io.CopyN(cw.out, in, e.off-pos); err != nil {
			return err
		}
		if err := cw.fill(r, s, e.ins); err != nil {
			return err
		}
		if _, err := in.Seek(e.del, io.SeekCurrent); err != nil {
			return err
		}
		pos = e.off + e.del
	}
	_, err := io.Copy(cw.out, in)
	return err
}

// spec says what a file's bytes look like.
type spec struct {
	ct   content
	mix  [3]int
	name string    // base name: picks config formats and key kinds
	t    time.Time // mtime: logs end there
}

// mixShortMean is the mean length of a log-uniform 8-48 KiB segment.
const mixShortMean = (48<<10 - 8<<10) / 1.791759469228055 // ln 6

// fill writes exactly size bytes of content s to cw.out.
func (cw *corpusWriter) fill(r *rand.Rand, s spec, size int64) error {
	left := size
	logT := s.t.Add(-time.Duration(1+r.IntN(60)) * 24 * time.Hour)
	zipNext := false
	for left > 0 {
		b := cw.scratch[:0]
		switch s.ct {
		case ctText:
			b = cw.w.appendText(r, b, int(min(left, 64<<10)))
		case ctBinary:
			b = cw.w.appendBinary(r, b)
		case ctZip:
			b = cw.appendGzip(r, b, left, 75)
		case ctMedia, ctPacked:
			b = cw.appendGzip(r, b, left, 15)
		case ctMixed:
			// Runs of text or binary alternating with small compressed
			// streams (embedded images, cabinets), as in PDFs, decks and
			// installers; run lengths keep the weights byte shares.
			ct, seg := ctText, int64(0)
			g := float64(s.mix[2]) / float64(s.mix[0]+s.mix[1]+s.mix[2])
			if zipNext && g > 0 {
				ct, seg = ctZip, logUniform(r, 8<<10, 48<<10)
			} else {
				if r.IntN(s.mix[0]+s.mix[1]) >= s.mix[0] {
					ct = ctBinary
				}
				if g > 0 {
					mean := int64(mixShortMean * (1 - g) / g)
					seg = mean/2 + r.Int64N(mean+1)
				} else {
					seg = logUniform(r, 128<<10, 2<<20)
				}
			}
			zipNext = !zipNext
			seg = min(seg, left)
			if err := cw.fill(r, spec{ct: ct, name: s.name, t: s.t}, seg); err != nil {
				return err
			}
			left -= seg
			continue
		case ctConfig:
			b = appendConfig(r, cw.w.c, b, s.name, int(min(left, 64<<10)))
		case ctLog:
			b, logT = appendLog(r, cw.w.c, b, logT, int(min(left, 64<<10)))
		case ctHistory:
			b = appendHistory(r, cw.w.c, b, int(min(left, 64<<10)))
		case ctKey:
			b = appendKey(r, b, s.name, int(min(left, 64<<10)))
		}
		k := min(int64(len(b)), left)
		if _, err := cw.out.Write(b[:k]); err != nil {
			return err
		}
		left -= k
		cw.scratch = b[:0]
	}
	return nil
}

// appendGzip appends one gzip member of about min(left, 1 MiB) bytes made
// from textPct% spliced text and the rest pieces of executables.
func (cw *corpusWriter) appendGzip(r *rand.Rand, dst []byte, left int64, textPct int) []byte {
	n := int(min(max(left*5/2, 4<<10), 2<<20))
	in := cw.in[:0]
	for len(in) < n {
		if r.IntN(100) < textPct {
			in = cw.w.appendText(r, in, 16<<10)
		} else {
			in = cw.w.appendBinary(r, in)
		}
	}
	cw.in = in
	cw.gzOut.Reset()
	cw.gz.Reset(&cw.gzOut)
	_, _ = cw.gz.Write(in)
	_ = cw.gz.Close()
	return append(dst, cw.gzOut.Bytes()...)
}

func configValue(r *rand.Rand, c *material) string {
	switch r.IntN(9) {
	case 0:
		return fmt.Sprint(r.IntN(100000))
	case 1:
		return pick(r, []string{"true", "false"})
	case 2:
		return fmt.Sprintf("%q", pick(r, c.words))
	case 3:
		return fmt.Sprintf("%q", fmt.Sprintf("/home/%s/%s/%s", pick(r, c.words), pick(r, c.words), pick(r, c.words)))
	case 4:
		return fmt.Sprintf("%q", fmt.Sprintf("https://%s.example.com/%s", strings.ToLower(pick(r, c.words)), pick(r, c.words)))
	case 5:
		return fmt.Sprintf("\"#%06x\"", r.IntN(1<<24))
	case 6:
		return fmt.Sprintf("%.3f", r.Float64()*100)
	case 7:
		return fmt.Sprintf("\"%08x-%04x-%04x-%04x-%012x\"", r.Uint32(), r.IntN(1<<16), r.IntN(1<<16), r.IntN(1<<16), r.Uint64()>>16)
	}
	return fmt.Sprintf("%q", strings.Join([]string{pick(r, c.words), pick(r, c.words), pick(r, c.words)}, " "))
}

// appendConfig appends at least n bytes of configuration in the format the
// name suggests.
func appendConfig(r *rand.Rand, c *material, dst []byte, name string, n int) []byte {
	target := len(dst) + n
	key := func() string { return pick(r, c.words) }
	ext := path.Ext(name)
	switch {
	case ext == ".json":
		dst = append(dst, "{\n"...)
		for len(dst) < target {
			dst = fmt.Appendf(dst, "  \"%s.%s\": %s,\n", key(), key(), configValue(r, c))
		}
		return append(dst, "}\n"...)
	case ext == ".xml" || ext == ".xcu" || ext == ".xbel":
		dst = append(dst, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<items>\n"...)
		for len(dst) < target {
			dst = fmt.Appendf(dst, "<item path=\"/org/%s/%s\"><prop name=\"%s\" op=\"fuse\"><value>%s</value></prop></item>\n",
				key(), key(), key(), strings.Trim(configValue(r, c), "\""))
		}
		return append(dst, "</items>\n"...)
	case ext == ".yaml":
		for len(dst) < target {
			dst = fmt.Appendf(dst, "%s:\n", key())
			for range 1 + r.IntN(8) {
				dst = fmt.Appendf(dst, "  %s: %s\n", key(), configValue(r, c))
			}
		}
		return dst
	case ext == ".js":
		for len(dst) < target {
			dst = fmt.Appendf(dst, "user_pref(\"%s.%s.%s\", %s);\n", strings.ToLower(key()), key(), key(), configValue(r, c))
		}
		return dst
	case ext == ".sh" || strings.HasPrefix(name, ".bash") || name == ".profile" || strings.HasSuffix(name, ".dirs"):
		dst = append(dst, "# ~/"+name+": executed by the shell\n\n"...)
		for len(dst) < target {
			switch r.IntN(4) {
			case 0:
				dst = fmt.Appendf(dst, "export %s=%s\n", strings.ToUpper(key()), configValue(r, c))
			case 1:
				dst = fmt.Appendf(dst, "alias %s='%s -%c %s'\n", strings.ToLower(key()), strings.ToLower(key()), 'a'+r.IntN(26), key())
			case 2:
				d := key()
				dst = fmt.Appendf(dst, "if [ -d \"$HOME/%s\" ] ; then\n    PATH=\"$HOME/%s:$PATH\"\nfi\n", d, d)
			default:
				dst = fmt.Appendf(dst, "# %s %s %s\n", key(), key(), key())
			}
		}
		return dst
	}
	for len(dst) < target {
		dst = fmt.Appendf(dst, "[%s]\n", key())
		for range 1 + r.IntN(10) {
			dst = fmt.Appendf(dst, "%s = %s\n", key(), strings.Trim(configValue(r, c), "\""))
		}
		dst = append(dst, '\n')
	}
	return dst
}

// appendLog appends at least n bytes of log lines from t on and returns
// the time of the last line.
func appendLog(r *rand.Rand, c *material, dst []byte, t time.Time, n int) ([]byte, time.Time) {
	target := len(dst) + n
	app, pid := strings.ToLower(pick(r, c.words)), 1000+r.IntN(30000)
	for len(dst) < target {
		t = t.Add(time.Duration(r.Int64N(int64(90 * time.Second))))
		dst = fmt.Appendf(dst, "%s %s %s[%d]: %s %s %s id=%08x took=%dms\n", t.Format("2006-01-02T15:04:05.000Z07:00"),
			pick(r, logLevels), app, pid, pick(r, c.words), pick(r, c.words), pick(r, c.words), r.Uint32(), r.IntN(2000))
	}
	return dst, t
}

var shellCommands = []string{"cd ~/Documents/%s", "ls -la", "git status", "git pull", "vim %s.py", "ssh %s.example.com", "grep -rn %s .", "less /var/log/syslog", "make %s", "python3 %s.py", "cp %s.txt backup/", "top", "sudo apt update", "tar xzf %s.tar.gz", "docker ps", "history | grep %s"}

func appendHistory(r *rand.Rand, c *material, dst []byte, n int) []byte {
	target := len(dst) + n
	for len(dst) < target {
		cmd := pick(r, shellCommands)
		if strings.Contains(cmd, "%s") {
			cmd = fmt.Sprintf(cmd, strings.ToLower(pick(r, c.words)))
		}
		dst = append(append(dst, cmd...), '\n')
	}
	return dst
}

// appendKey appends key material: random bytes are what keys are.
func appendKey(r *rand.Rand, dst []byte, name string, n int) []byte {
	target := len(dst) + n
	raw := make([]byte, 52)
	b64 := func() string {
		for i := range raw {
			raw[i] = byte(r.Uint32())
		}
		return base64.StdEncoding.EncodeToString(raw)
	}
	for len(dst) < target {
		switch {
		case strings.HasSuffix(name, ".pub"):
			dst = fmt.Appendf(dst, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5%s user@%s\n", b64()[:48], "workstation")
		case name == "known_hosts":
			dst = fmt.Appendf(dst, "|1|%s ssh-ed25519 AAAAC3NzaC1lZDI1NTE5%s\n", b64()[:56], b64()[:48])
		default:
			dst = append(dst, "-----BEGIN OPENSSH PRIVATE KEY-----\n"...)
			for range 5 {
				dst = append(append(dst, b64()[:70]...), '\n')
			}
			dst = append(dst, "-----END OPENSSH PRIVATE KEY-----\n"...)
		}
	}
	return dst
}

// ---- mutation ----

type mutFile struct {
	rel  string // slash path relative to the profile
	size int64
	mode fs.FileMode
}

type mutUser struct {
	name    string
	files   []mutFile
	targets map[string]bool // profile-relative paths symlinks point to
}

var (
	mutRewriteExts = []string{".docx", ".xlsx", ".pptx", ".dotx", ".xltx", ".potx", ".zip"}
	mutTextExts    = []string{".txt", ".md", ".csv", ".json", ".html", ".py", ".go", ".sh", ".xml"}
	mutMixedExts   = []string{".pdf", ".sqlite", ".db", ".pst"}
)

// MutateOrg applies a deterministic "one week later" change (edits,
// additions, deletions) to a corpus made by GenerateOrg.
//
// The week ends 7 days after the newest mtime in DIR/home; every file it
// changes gets an mtime in its last 3 days, so it is newer than anything
// before. For about 3.5% of the corpus' bytes (ChangedBytes, the size of
// the files added or modified), each user gets: an org-wide update (an
// installer patch and a template, byte-identical for everyone); 2-5
// documents edited (text, PDFs and databases with bytes inserted and
// deleted mid-file, written to a temporary file and renamed; .docx/.xlsx
// rewritten whole, as office suites do); log files and shell history
// appended to in place; a database with a few 4 KiB pages overwritten in
// place (same size); 1-3 downloads or pictures deleted; new documents,
// downloads and photos filling the rest. Touched directories get the
// mtime of their newest change. The same tree and seed give the same
// result. ZstdRatio is not measured (0).
func MutateOrg(dir string, seed uint64) (*OrgInfo, error) {
	c, err := loadMaterial()
	if err != nil {
		return nil, err
	}
	home := filepath.Join(dir, "home")
	users, latest, total, err := scanCorpus(home)
	if err != nil {
		return nil, err
	}
	now := latest.Add(7 * 24 * time.Hour).Truncate(time.Minute)
	date := now.Format("2006-01-02")
	per := total * 35 / 1000 / int64(len(users))
	r := rand.New(rand.NewPCG(seed, 0x6d7574617465)) // "mutate"
	when := func(r *rand.Rand) time.Time {
		return now.Add(-time.Duration(r.Int64N(3*24*3600)) * time.Second)
	}
	res := &OrgInfo{Root: dir}
	touched := make([]map[string]time.Time, len(users))
	for i := range touched {
		touched[i] = map[string]time.Time{}
	}
	touch := func(u int, rel string, t time.Time) {
		d := path.Dir(rel)
		if t.After(touched[u][d]) {
			touched[u][d] = t
		}
	}
	profile := func(u int, rel string) string {
		return filepath.Join(home, users[u].name, filepath.FromSlash(rel))
	}
	var mu sync.Mutex
	count := func(added, modified, deleted int, bytes int64) {
		mu.Lock()
		res.Added += added
		res.Modified += modified
		res.Deleted += deleted
		res.ChangedBytes += bytes
		mu.Unlock()
	}

	// Org-wide update: written once, copied to everyone.
	orgSize := max(per*3/10, 8<<10)
	all := make([]int, len(users))
	for i := range all {
		all[i] = i
	}
	cw := newCorpusWriter(c)
	for _, it := range []struct {
		name string
		ct   content
		mix  [3]int
		size int64
	}{
		{fmt.Sprintf("Downloads/%s-SecurityUpdate-%s.msp", pick(r, corpProducts), date), ctMixed, mixInstaller, orgSize * 8 / 10},
		{fmt.Sprintf("Documents/%s Template (%s).dotx", pick(r, corpTopics), date), ctZip, [3]int{}, orgSize - orgSize*8/10},
	} {
		rel := freeIn(func(rel string) string { return profile(0, rel) }, it.name)
		t := when(r)
		sub := r.Uint64()
		src := profile(0, rel)
		err := cw.create(src, func() error {
			return cw.fill(contentRand(seed, sub), spec{ct: it.ct, mix: it.mix, name: path.Base(rel), t: t}, it.size)
		})
		if err != nil {
			return nil, fmt.Errorf("mutate: %w", err)
		}
		for u := range users {
			if u > 0 {
				if err := copyFile(src, profile(u, rel), 0o644); err != nil {
					return nil, fmt.Errorf("mutate: %w", err)
				}
			}
			if err := os.Chmod(profile(u, rel), 0o644); err != nil {
				return nil, fmt.Errorf("mutate: %w", err)
			}
			if err := os.Chtimes(profile(u, rel), t, t); err != nil {
				return nil, fmt.Errorf("mutate: %w", err)
			}
			touch(u, rel, t)
		}
		count(len(users), 0, 0, it.size*int64(len(users)))
	}

	// Each user's week, in parallel: every user has its own random stream.
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	pool := sync.Pool{New: func() any { return newCorpusWriter(c) }}
	for u := range users {
		ur := rand.New(rand.NewPCG(seed, 0x6d7574617465<<8|uint64(u)))
		g.Go(func() error {
			cw := pool.Get().(*corpusWriter)
			defer pool.Put(cw)
			m := &mutator{c: c, cw: cw, r: ur, seed: seed, u: users[u], prof: func(rel string) string { return profile(u, rel) },
				when: when, touch: func(rel string, t time.Time) { touch(u, rel, t) }, date: date}
			if err := m.run(per - orgSize); err != nil {
				return fmt.Errorf("mutate %s: %w", users[u].name, err)
			}
			count(m.added, m.modified, m.deleted, m.changed)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for u := range users {
		for d, t := range touched[u] {
			if err := os.Chtimes(profile(u, d), t, t); err != nil {
				return nil, fmt.Errorf("mutate: %w", err)
			}
		}
	}
	if err := countCorpus(home, res); err != nil {
		return nil, err
	}
	for _, u := range users {
		res.Users = append(res.Users, u.name)
	}
	return res, nil
}

// freeIn returns rel or rel with a " (n)" suffix that does not exist.
func freeIn(abs func(string) string, rel string) string {
	ext := path.Ext(rel)
	stem := strings.TrimSuffix(rel, ext)
	cand := rel
	for n := 2; ; n++ {
		if _, err := os.Lstat(abs(cand)); os.IsNotExist(err) {
			return cand
		}
		cand = fmt.Sprintf("%s (%d)%s", stem, n, ext)
	}
}

// scanCorpus lists each profile's regular files and symlink targets, the
// newest mtime and the total bytes.
func scanCorpus(home string) ([]*mutUser, time.Time, int64, error) {
	ents, err := os.ReadDir(home)
	if err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("mutate: %w", err)
	}
	var users []*mutUser
	var latest time.Time
	var total int64
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		u := &mutUser{name: e.Name(), targets: map[string]bool{}}
		root := filepath.Join(home, e.Name())
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.ModTime().After(latest) {
				latest = info.ModTime()
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			switch {
			case d.Type().IsRegular():
				u.files = append(u.files, mutFile{rel: rel, size: info.Size(), mode: info.Mode().Perm()})
				total += info.Size()
			case d.Type()&fs.ModeSymlink != 0:
				if t, err := os.Readlink(p); err == nil && !path.IsAbs(t) {
					u.targets[path.Join(path.Dir(rel), t)] = true
				}
			}
			return nil
		})
		if err != nil {
			return nil, latest, 0, fmt.Errorf("mutate: %w", err)
		}
		users = append(users, u)
	}
	if len(users) == 0 {
		return nil, latest, 0, fmt.Errorf("mutate: no profiles in %s", home)
	}
	if latest.Before(Now) {
		latest = Now
	}
	return users, latest, total, nil
}

// countCorpus fills in the totals of the tree under home.
func countCorpus(home string, info *OrgInfo) error {
	return filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			info.Dirs++
		case d.Type()&fs.ModeSymlink != 0:
			info.Symlinks++
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			info.Files++
			info.Bytes += fi.Size()
		}
		return nil
	})
}

type mutator struct {
	c     *material
	cw    *corpusWriter
	r     *rand.Rand
	seed  uint64
	u     *mutUser
	prof  func(rel string) string
	when  func(*rand.Rand) time.Time
	touch func(rel string, t time.Time)
	date  string

	done                     map[string]bool
	added, modified, deleted int
	changed                  int64
}

func (m *mutator) candidates(ok func(f mutFile) bool) []mutFile {
	var out []mutFile
	for _, f := range m.u.files {
		if !m.done[f.rel] && !m.u.targets[f.rel] && ok(f) {
			out = append(out, f)
		}
	}
	return out
}

func under(rel string, dirs ...string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

func (m *mutator) run(budget int64) error {
	r := m.r
	m.done = map[string]bool{}
	left := budget

	// Edited documents: up to 35% of the budget.
	editBudget := budget * 35 / 100
	docs := m.candidates(func(f mutFile) bool {
		ext := path.Ext(f.rel)
		return under(f.rel, "Documents", "Desktop") && f.size >= 1<<10 && f.size <= editBudget &&
			(slices.Contains(mutTextExts, ext) || slices.Contains(mutRewriteExts, ext) || slices.Contains(mutMixedExts, ext))
	})
	want := 2 + r.IntN(4)
	for _, k := range r.Perm(len(docs)) {
		f := docs[k]
		if want == 0 || f.size > editBudget {
			continue
		}
		n, err := m.edit(f)
		if err != nil {
			return err
		}
		editBudget -= n
		left -= n
		want--
	}

	// Logs and shell history grow in place.
	logs := m.candidates(func(f mutFile) bool {
		return (path.Ext(f.rel) == ".log" || f.rel == ".bash_history") && f.size <= budget/3
	})
	for range min(len(logs), 1+r.IntN(3)) {
		k := r.IntN(len(logs))
		f := logs[k]
		logs = slices.Delete(logs, k, k+1)
		t := m.when(r)
		add := logUniform(r, 2<<10, 32<<10)
		ct := ctLog
		if f.rel == ".bash_history" {
			ct = ctHistory
		}
		out, err := os.OpenFile(m.prof(f.rel), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		m.cw.out.Reset(out)
		err = m.cw.fill(contentRand(m.seed, r.Uint64()), spec{ct: ct, name: path.Base(f.rel), t: t.Add(-3 * time.Hour)}, add)
		if err == nil {
			err = m.cw.out.Flush()
		}
		m.cw.out.Reset(nil)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chtimes(m.prof(f.rel), t, t)
		}
		if err != nil {
			return err
		}
		m.done[f.rel] = true
		m.modified++
		m.changed += f.size + add
		left -= f.size + add
	}

	// A database changes a few pages in place.
	dbs := m.candidates(func(f mutFile) bool {
		ext := path.Ext(f.rel)
		return (ext == ".db" || ext == ".sqlite") && f.size >= 16<<10 && f.size <= budget
	})
	if len(dbs) > 0 {
		f := pick(r, dbs)
		out, err := os.OpenFile(m.prof(f.rel), os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		for range 1 + r.IntN(6) {
			page := m.cw.w.appendBinary(r, nil)
			if len(page) < 4096 {
				continue
			}
			page = page[:4096]
			if _, err := out.WriteAt(page, r.Int64N(f.size/4096)*4096); err != nil {
				out.Close()
				return err
			}
		}
		if err := out.Close(); err != nil {
			return err
		}
		t := m.when(r)
		if err := os.Chtimes(m.prof(f.rel), t, t); err != nil {
			return err
		}
		m.done[f.rel] = true
		m.modified++
		m.changed += f.size
		left -= f.size
	}

	// A few downloads and pictures are deleted.
	gone := m.candidates(func(f mutFile) bool { return under(f.rel, "Downloads", "Pictures") && f.size <= budget/2 })
	for range min(len(gone), 1+r.IntN(3)) {
		k := r.IntN(len(gone))
		f := gone[k]
		gone = slices.Delete(gone, k, k+1)
		if err := os.Remove(m.prof(f.rel)); err != nil {
			return err
		}
		m.touch(f.rel, m.when(r))
		m.done[f.rel] = true
		m.deleted++
	}

	// New files fill the rest of the budget.
	news := []item{
		{dir: "Downloads", name: "{topic}-" + m.date + ".pdf", ct: ctMixed, mix: mixPDF},
		{dir: "Documents", name: "{Topic} notes " + m.date + ".txt", ct: ctText},
		{dir: "Pictures", name: "IMG_" + strings.ReplaceAll(m.date, "-", "") + "_{n4}.jpg", ct: ctMedia},
		{dir: "Desktop", name: "{Topic} " + m.date + ".docx", ct: ctZip},
	}
	n := 1 + r.IntN(4)
	left = max(left, int64(4<<10)*int64(n))
	for i := range n {
		it := pick(r, news)
		size := left / int64(n-i)
		if i < n-1 {
			size = size/2 + r.Int64N(size)
		}
		size = max(size, 1<<10)
		name := expandName(r, m.c, it.name, "", "")
		rel := freeIn(m.prof, it.dir+"/"+name)
		t := m.when(r)
		sub := r.Uint64()
		err := m.cw.create(m.prof(rel), func() error {
			return m.cw.fill(contentRand(m.seed, sub), spec{ct: it.ct, mix: it.mix, name: name, t: t}, size)
		})
		if err == nil {
			err = os.Chmod(m.prof(rel), 0o644)
		}
		if err == nil {
			err = os.Chtimes(m.prof(rel), t, t)
		}
		if err != nil {
			return err
		}
		m.touch(rel, t)
		m.done[rel] = true
		m.added++
		m.changed += size
		left -= size
	}
	return nil
}

// edit rewrites document f as an editor would (new file, rename) and
// returns its new size.
func (m *mutator) edit(f mutFile) (int64, error) {
	r := m.r
	ext := path.Ext(f.rel)
	s := spec{ct: ctText, name: path.Base(f.rel), t: m.when(r)}
	switch {
	case slices.Contains(mutMixedExts, ext):
		s.ct, s.mix = ctMixed, mixPDF
		if ext != ".pdf" {
			s.mix = mixDB
		}
	case slices.Contains(mutRewriteExts, ext):
		s.ct = ctZip
	}
	dir, base := path.Split(f.rel)
	tmp := dir + "." + base + ".tmp"
	sub := contentRand(m.seed, r.Uint64())
	size := f.size
	var edits []corpusEdit
	if s.ct == ctZip { // saved whole: nothing in common with the old bytes
		size = max(1<<10, f.size+f.size*int64(r.IntN(11)-5)/100)
	} else {
		edits, size = planEdits(r, f.size)
	}
	err := m.cw.create(m.prof(tmp), func() error {
		if edits == nil {
			return m.cw.fill(sub, s, size)
		}
		in, err := os.Open(m.prof(f.rel))
		if err != nil {
			return err
		}
		defer in.Close()
		return m.cw.applyEdits(sub, in, edits, s)
	})
	if err == nil {
		err = os.Chmod(m.prof(tmp), f.mode)
	}
	if err == nil {
		err = os.Chtimes(m.prof(tmp), s.t, s.t)
	}
	if err == nil {
		err = os.Rename(m.prof(tmp), m.prof(f.rel))
	}
	if err != nil {
		return 0, err
	}
	m.touch(f.rel, s.t)
	m.done[f.rel] = true
	m.modified++
	m.changed += size
	return size, nil
}
