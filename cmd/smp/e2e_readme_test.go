package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EReadmeQuickStart runs the README's one-command quick start as a
// fresh machine would: a new home directory with no config directory, so
// smp init makes an encrypted store whose key file goes to
// $HOME/.config/smp/keys, where capture and restore find it. The command
// is the README's own line, with its `go build` replaced by a copy of the
// binary under test (the build would write into the repository) and run
// in a temporary directory.
func TestE2EReadmeQuickStart(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("captures /usr/share/doc")
	}
	if _, err := os.Stat("/usr/share/doc"); err != nil {
		t.Skipf("no /usr/share/doc to capture: %v", err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const build = "go build -o smp ./cmd/smp"
	var line string
	for l := range strings.SplitSeq(string(readme), "\n") {
		if strings.HasPrefix(l, "    d=$(mktemp -d) && "+build+" && ") {
			line = strings.TrimSpace(l)
		}
	}
	if line == "" {
		t.Fatalf("README.md has no quick start line starting with d=$(mktemp -d) && %s", build)
	}
	cmdline := strings.Replace(line, build, "cp "+smpPath(t)+" smp", 1)
	home, work := tmpDir(t), tmpDir(t)
	cmd := exec.Command("bash", "-c", cmdline)
	cmd.Dir = work
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + work, "LANG=C"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", cmdline, err, out.String())
	}
	if !strings.HasSuffix(strings.TrimSpace(out.String()), "identical") || !strings.Contains(out.String(), "recovery key: SMPR-") {
		t.Fatalf("%s: want the recovery key printed and \"identical\" last\n%s", cmdline, out.String())
	}
	keys, _ := filepath.Glob(filepath.Join(home, ".config", "smp", "keys", "*.key"))
	if len(keys) != 1 || !strings.Contains(out.String(), "key file "+keys[0]) {
		t.Fatalf("key files in the new home: %q; want the one init named\n%s", keys, out.String())
	}
}
