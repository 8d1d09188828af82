package capture

import (
	"fmt"
	"path"
	"time"
)

// ProfileOptions choose the profiles a capture takes, as USMT's /ui, /ue
// and /uel do.
type ProfileOptions struct {
	Root  string   // the source root
	Users []string // --user: only these profiles (empty: every profile)
	// ExcludeUsers are path.Match patterns of user names to leave out.
	ExcludeUsers []string
	// InactiveFor, when positive, leaves out the profiles whose owner has
	// not logged in for that long (see SelectProfiles).
	InactiveFor time.Duration
	Now         time.Time
}

// ProfileChoice is what SelectProfiles decided for one profile.
type ProfileChoice struct {
	User   string `json:"user"`
	Path   string `json:"path"` // below the root: home/alice, or root
	Taken  bool   `json:"taken"`
	Reason string `json:"reason,omitempty"` // why it was left out
	// LastActive is the owner's last login, or the profile's newest
	// mtime when no login record names them; Source says which (the
	// login file below the root, or "mtime"). Only with InactiveFor.
	LastActive *time.Time `json:"last_active,omitempty"`
	Source     string     `json:"source,omitempty"`
}

// CheckUserPattern refuses a malformed --exclude-user pattern.
func CheckUserPattern(p string) error {
	if p == "" {
		return fmt.Errorf("empty pattern")
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("pattern %q: %v", p, err)
	}
	return nil
}

// excludedBy returns the first pattern matching user, or "".
func excludedBy(user string, patterns []string) string {
	for _, p := range patterns {
		if ok, _ := path.Match(p, user); ok {
			return p
		}
	}
	return ""
}

// profilePath is the path of user's profile below the root.
func profilePath(user string) string {
	if user == "root" {
		return "root"
	}
	return "home/" + user
}
