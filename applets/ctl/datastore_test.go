package ctl

import (
	"path/filepath"
	"strings"
	"testing"
)

// datastore migrate lock|unlock flip ClusterInformation datastoreReady, and
// ipam release --from-report runs without --force only while locked.
func TestDatastoreLockUnlock(t *testing.T) {
	c := newCtlEnv(t)
	ciKey := resPrefix + "clusterinformations/default"
	// On a fresh datastore, lock creates the ClusterInformation first.
	if r := c.mustRun("datastore", "migrate", "lock"); r.stdout != "Datastore locked.\n" {
		t.Errorf("lock: %s", r)
	}
	if v := c.value(ciKey); !strings.Contains(v, `"datastoreReady":false`) || !strings.Contains(v, `"clusterGUID":"`) {
		t.Fatalf("after lock: %s", v)
	}
	if r := c.mustRun("get", "clusterinformation", "default", "-o", "custom-columns=DATASTOREREADY"); !strings.Contains(r.stdout, "false") {
		t.Errorf("get clusterinformation: %s", r)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	c.mustRun("ipam", "check", "-o", report)
	r := c.run("ipam", "release", "--from-report="+report)
	if r.rc != 0 || strings.Contains(r.stdout, "WARNING") || !strings.Contains(r.stdout, "You may now unlock the data store.") {
		t.Errorf("release while locked, without --force:\n%s", r)
	}
	if r := c.mustRun("datastore", "migrate", "unlock"); r.stdout != "Datastore unlocked.\n" {
		t.Errorf("unlock: %s", r)
	}
	if v := c.value(ciKey); !strings.Contains(v, `"datastoreReady":true`) {
		t.Fatalf("after unlock: %s", v)
	}
	c.mustRun("ipam", "check", "-o", report)
	if r := c.run("ipam", "release", "--from-report="+report); r.rc != 1 || !strings.Contains(r.stderr, "data store is not locked") {
		t.Errorf("release while unlocked, without --force:\n%s", r)
	}
	if r := c.run("datastore", "migrate", "frobnicate"); r.rc != 2 || !strings.Contains(r.stderr, "migrate lock") {
		t.Errorf("unknown migrate command:\n%s", r)
	}
}
