package main

import (
	"bytes"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestE2EKeysPrompt: with no other key source, a terminal is asked for the
// passphrase (not echoed), and the store opens with it.
func TestE2EKeysPrompt(t *testing.T) {
	t.Parallel()
	cfgDir := tmpDir(t)
	store := filepath.Join(tmpDir(t), "store")
	pass := secretFile(t, "typed at the prompt\n")
	if r := smpWith(t, runOpts{env: keyEnv(cfgDir)}, "init", "--store", store, "--passphrase-file", pass); r.code != exitOK {
		t.Fatalf("init:\n%s", r)
	}
	master, slave := openPty(t)
	cmd := exec.Command(smpPath(t), "records", "--store", store)
	cmd.Env = append(cmd.Environ(), keyEnv(tmpDir(t))...) // no stored key
	var stdout bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, &stdout, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var mu sync.Mutex
	var tty bytes.Buffer
	done := make(chan struct{})
	go func() { // ends with EIO when the child exits
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			tty.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				break
			}
		}
		close(done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		asked := strings.Contains(tty.String(), "passphrase or recovery key for store")
		mu.Unlock()
		if asked {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no prompt on the terminal: %q", tty.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := io.WriteString(master, "typed at the prompt\r"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("records after the prompt: %v\n%q", err, tty.String())
	}
	<-done
	if strings.Contains(tty.String(), "typed at the prompt") {
		t.Error("the passphrase was echoed")
	}
}
