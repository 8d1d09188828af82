package corpus

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"path"
	"strings"
	"time"
)

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
