package corpus

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"strings"
)

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
		case "hex1":
			fmt.Fprintf(&b, "%x", r.IntN(16))
		case "hex2":
			fmt.Fprintf(&b, "%02x", r.IntN(256))
		case "hex38":
			fmt.Fprintf(&b, "%016x%016x%06x", r.Uint64(), r.Uint64(), r.IntN(1<<24))
		case "hex16":
			fmt.Fprintf(&b, "%016x", r.Uint64())
		case "hex32":
			fmt.Fprintf(&b, "%016x%016x", r.Uint64(), r.Uint64())
		default:
			b.WriteString(key)
		}
	}
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
