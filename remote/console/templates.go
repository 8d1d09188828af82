package console

import (
	"fmt"
	"html/template"
	"time"
)

var pageNames = []string{"login", "error", "overview", "computers", "computer", "record", "tokens", "confirm", "result"}

var funcs = template.FuncMap{
	"bytes": humanBytes,
	"ago": func(d time.Duration) string {
		switch {
		case d >= 48*time.Hour:
			return fmt.Sprintf("%d days", int(d.Hours()/24))
		case d >= time.Hour:
			return fmt.Sprintf("%.0f h", d.Hours())
		}
		return fmt.Sprintf("%.0f min", d.Minutes())
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"u64":   func(n int64) uint64 { return uint64(max(n, 0)) },
	"u64f":  func(f float64) uint64 { return uint64(max(f, 0)) },
	"pct":   func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"ratio": func(f float64) string { return fmt.Sprintf("%.2f", f) },
}

func (c *Console) parseTemplates() error {
	c.tmpl = map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("console template %s: %w", name, err)
		}
		c.tmpl[name] = t
	}
	return nil
}

// humanBytes prints n in binary units, exact below 1 KiB.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
