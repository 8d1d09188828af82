package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPty returns the master and the slave end of a new pseudo-terminal.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pty slave: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// TestE2EProgressTerminalStderr: on a terminal stderr, a problem line
// still starts by erasing the progress bar's line (the counterpart of
// TestE2EProgressPlainStderr), even when stdout is a pipe.
func TestE2EProgressTerminalStderr(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	src := tmpDir(t)
	writeFile(t, filepath.Join(src, "home", "alice", "a.txt"), []byte("captured\n"), 0o644)
	mustSMP(t, "capture", "--store", store, "--computer", "PC01", "--root", src)
	dst := tmpDir(t)
	writeFile(t, filepath.Join(dst, "home", "alice", "a.txt"), []byte("already here\n"), 0o644)

	master, slave := openPty(t)
	cmd := exec.Command(smpPath(t), "restore", "--store", store, "--computer", "PC01", "--root", dst)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var tty bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&tty, master); close(done) }() // ends with EIO when the child exits
	// The existing file is left alone: exit 3, as loadstate.
	if err := cmd.Wait(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != exitPartial {
		t.Fatalf("restore: %v, want exit 3\n%s", err, tty.String())
	}
	<-done
	want := "\r\x1b[Kskipped: " + filepath.Join(dst, "home", "alice", "a.txt")
	if !strings.Contains(tty.String(), want) {
		t.Errorf("terminal stderr %q does not hold %q", tty.String(), want)
	}
}
