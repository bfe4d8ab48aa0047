package ctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/testutil"
)

// The CLI tests run the built calicoctl (a symlink to the multi-call binary)
// against a real embedded etcd, and read etcd back directly.

// binDir holds the binary under test (calicoctl is a symlink to it).
var binDir string

func TestMain(m *testing.M) {
	testutil.ServeEtcdChild() // the etcd child of TestStoppedEtcdFailsFast
	// The reachability tests listen on 127.0.0.1: in a network namespace
	// of the test binary's own.
	os.Exit(testutil.RunInOwnNetNS(func() int { return testutil.RunWithBinary(m, &binDir) }))
}

// ctlEnv is one test's etcd and a way to run calicoctl against it.
type ctlEnv struct {
	t     *testing.T
	etcd  *testutil.Etcd
	store *etcd.Store
	env   []string
}

func newCtlEnv(t *testing.T) *ctlEnv {
	t.Helper()
	e := testutil.StartEtcd(t)
	s, err := etcd.New(etcd.Config{Endpoints: []string{e.Endpoint}})
	if err != nil {
		t.Fatalf("connect to etcd: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return &ctlEnv{t: t, etcd: e, store: s, env: []string{
		"ETCD_ENDPOINTS=" + e.Endpoint,
		"DATASTORE_TYPE=etcdv3",
		"PATH=" + os.Getenv("PATH"),
	}}
}

// result is what one calicoctl run printed and returned.
type result struct {
	stdout, stderr string
	rc             int
}

func (r result) String() string {
	return fmt.Sprintf("rc=%d\nstdout:\n%s\nstderr:\n%s", r.rc, r.stdout, r.stderr)
}

// run runs calicoctl with args and no stdin.
func (c *ctlEnv) run(args ...string) result { return c.runIn("", args...) }

// runIn runs calicoctl with stdin.
func (c *ctlEnv) runIn(stdin string, args ...string) result {
	c.t.Helper()
	return c.runEnv(c.env, stdin, args...)
}

func (c *ctlEnv) runEnv(env []string, stdin string, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "calicoctl"), args...)
	cmd.Env = env
	cmd.Dir = filepath.Join("..", "..") // fixture paths are relative to the repository
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.rc = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("run calicoctl %v: %v", args, err)
	}
	return r
}

// mustRun runs calicoctl and fails the test unless it exits 0.
func (c *ctlEnv) mustRun(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.rc != 0 {
		c.t.Fatalf("calicoctl %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// snapshot is everything under /calico and the store revision.
type snapshot struct {
	rev  int64
	kvs  map[string]string
	keys []string
}

func (c *ctlEnv) snapshot() snapshot {
	c.t.Helper()
	items, rev, err := c.store.List(context.Background(), "/calico/")
	if err != nil {
		c.t.Fatalf("list etcd: %v", err)
	}
	s := snapshot{rev: rev, kvs: map[string]string{}}
	for _, it := range items {
		s.kvs[it.Key] = string(it.Value)
		s.keys = append(s.keys, it.Key)
	}
	sort.Strings(s.keys)
	return s
}

// value returns one stored value, or "" when the key is absent.
func (c *ctlEnv) value(key string) string {
	c.t.Helper()
	return c.snapshot().kvs[key]
}

// normalize blanks the values that differ per run: uid, creationTimestamp
// and the cluster GUID.
func normalize(v string) string {
	v = regexp.MustCompile(`"uid":"[0-9a-f-]{36}"`).ReplaceAllString(v, `"uid":"UID"`)
	v = regexp.MustCompile(`"creationTimestamp":"[0-9TZ:-]{20}"`).ReplaceAllString(v, `"creationTimestamp":"TS"`)
	return regexp.MustCompile(`"clusterGUID":"[0-9a-f]{32}"`).ReplaceAllString(v, `"clusterGUID":"GUID"`)
}

const resPrefix = "/calico/resources/v3/projectcalico.org/"

// golden compares got with testdata/<name>.golden byte for byte.
func golden(t *testing.T, name, got string) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join("testdata", name+".golden"))
	if err != nil {
		t.Fatalf("read golden: %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from testdata/%s.golden\ngot:\n%q\nwant:\n%q", name, name, got, want)
	}
}

// oneErrorLine checks a refused command: non-zero exit, nothing on stdout,
// and exactly one line on stderr containing every want.
func oneErrorLine(t *testing.T, r result, want ...string) {
	t.Helper()
	if r.rc == 0 {
		t.Errorf("exit code 0, want non-zero\n%s", r)
	}
	if r.stdout != "" {
		t.Errorf("stdout not empty: %q", r.stdout)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr is not exactly one line: %q", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q does not contain %q", r.stderr, w)
		}
	}
}
