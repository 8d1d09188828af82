package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EAdminLimits: smp admin limits sets, shows and removes the
// store's shared capacity limits; the access file says version 2 only
// while a limit is set (an older smp keeps reading a store without any);
// bad values are refused with one line and change nothing.
func TestE2EAdminLimits(t *testing.T) {
	t.Parallel()
	store := newClearStore(t)
	var got struct {
		MaxRecords    int    `json:"max_records"`
		MaxStoreBytes uint64 `json:"max_store_bytes"`
		Quota         uint64 `json:"quota"`
	}
	smpJSON(t, exitOK, &got, "admin", "limits", "--store", store, "--max-store-bytes", "2TiB", "--max-records", "500", "--json")
	if got.MaxStoreBytes != 2<<40 || got.MaxRecords != 500 || got.Quota != 0 {
		t.Fatalf("limits after setting: %+v", got)
	}
	if b := readFile(t, filepath.Join(store, "access.json")); !strings.Contains(b, `"version": 2`) {
		t.Fatalf("access.json with limits is not version 2:\n%s", b)
	}
	for _, bad := range [][]string{{"--max-records", "-1"}, {"--max-records", "many"}, {"--max-store-bytes", "lots"}, {"--quota", "0.5 parsecs"}} {
		r := smp(t, append([]string{"admin", "limits", "--store", store}, bad...)...)
		if r.code != exitUsage || len(r.stderrLines()) != 1 || !strings.Contains(r.stderr, bad[0]) {
			t.Errorf("admin limits %v: want exit 2 and one line naming the flag\n%v", bad, r)
		}
	}
	r := mustSMP(t, "admin", "limits", "--store", store, "--quota", "20GiB", "--max-records", "none")
	for _, want := range []string{"max-records      none", "max-store-bytes  2.0 TiB", "quota            20 GiB"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("admin limits output lacks %q:\n%s", want, r.stdout)
		}
	}
	mustSMP(t, "admin", "limits", "--store", store, "--quota", "none", "--max-store-bytes", "0")
	if b := readFile(t, filepath.Join(store, "access.json")); !strings.Contains(b, `"version": 1`) || strings.Contains(b, "limits") {
		t.Fatalf("access.json without limits is not version 1:\n%s", b)
	}
}
