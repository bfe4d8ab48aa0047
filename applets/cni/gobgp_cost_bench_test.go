package cni

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// gobgpCostRounds is how many ADDs (and `calico version` runs) each
// binary gets in BenchmarkCNIGoBGPCost.
const gobgpCostRounds = 200

// variant is one build of the binary under test, in its own directory
// with the calico-ipam link (the plugin execs the IPAM of CNI_PATH, so
// both execs of an ADD are the variant's).
type variant struct {
	name string
	dir  string
	size int64
}

// buildVariant builds the module's binary with tags into a new directory,
// with the Makefile's flags (minus the version stamps).
func buildVariant(b *testing.B, name, tags string) (variant, error) {
	dir := filepath.Join(b.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return variant{}, err
	}
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return variant{}, fmt.Errorf("find module root: %w", err)
	}
	out := filepath.Join(dir, "calico")
	cmd := exec.Command("go", "build", "-tags="+tags, "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = strings.TrimSpace(string(root))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if o, err := cmd.CombinedOutput(); err != nil {
		return variant{}, fmt.Errorf("go build -tags=%q: %v: %s", tags, err, o)
	}
	if err := os.Symlink("calico", filepath.Join(dir, "calico-ipam")); err != nil {
		return variant{}, err
	}
	st, err := os.Stat(out)
	if err != nil {
		return variant{}, err
	}
	return variant{name: name, dir: dir, size: st.Size()}, nil
}

// linksGoBGP reports whether the binary's module list names GoBGP.
func linksGoBGP(bin string) (bool, error) {
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		return false, fmt.Errorf("go version -m %s: %w", bin, err)
	}
	return strings.Contains(string(out), "github.com/osrg/gobgp"), nil
}

// runPlugin runs the variant's plugin once (from the node namespace) and
// returns its wall time from start to exit.
func runPlugin(v variant, command, cid, podNS string, conf []byte) (time.Duration, error) {
	cmd := exec.Command(filepath.Join(v.dir, "calico"))
	cmd.Env = []string{
		"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + cid, "CNI_NETNS=" + podNS, "CNI_IFNAME=eth0",
		"CNI_PATH=" + v.dir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}
	cmd.Stdin = bytes.NewReader(conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return d, fmt.Errorf("%s %s %s: %v\nstdout %s\nstderr %s", v.name, command, cid, err, out.String(), errb.String())
	}
	if command == "ADD" && !strings.Contains(out.String(), `"10.244.`) {
		return d, fmt.Errorf("%s ADD %s: no address in %q", v.name, cid, out.String())
	}
	return d, nil
}

var initLineRE = regexp.MustCompile(`^init (\S+) @[0-9.]+ ms, ([0-9.]+) ms clock`)

// initTrace runs `calico version` with GODEBUG=inittrace=1 and returns
// the summed init clock time of all packages and of GoBGP's.
func initTrace(v variant) (total, gobgp time.Duration, err error) {
	cmd := exec.Command(filepath.Join(v.dir, "calico"), "version")
	cmd.Env = []string{"GODEBUG=inittrace=1"}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("%s version: %w", v.name, err)
	}
	for _, line := range strings.Split(errb.String(), "\n") {
		m := initLineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f, _ := strconv.ParseFloat(m[2], 64)
		d := time.Duration(f * float64(time.Millisecond))
		total += d
		if strings.Contains(m[1], "osrg/gobgp") {
			gobgp += d
		}
	}
	return total, gobgp, nil
}

// BenchmarkCNIGoBGPCost measures what linking GoBGP costs the CNI plugin:
// the normal build and one with the nogobgp tag (internal/bgp's GoBGP
// files replaced by a stub, GoBGP not linked), both built here with the
// same flags, run interleaved in one run (A B B A ... so neither always
// goes first) on the node of BenchmarkCNI's environment (real etcd, a
// netns per pod, the plugin exec'd as a runtime does, its IPAM exec'd
// through CNI_PATH). Each round ADDs a new container with each binary
// (warm block) and DELs it (not timed). Also interleaved: `calico
// version` wall time and GODEBUG=inittrace=1 init totals.
func BenchmarkCNIGoBGPCost(b *testing.B) {
	e := newEnv(b)
	conf := e.conf("0.3.1", nil)
	a, err := buildVariant(b, "gobgp", "")
	if err != nil {
		b.Skipf("cannot build the normal variant: %v", err)
	}
	v, err := buildVariant(b, "nogobgp", "nogobgp")
	if err != nil {
		b.Skipf("cannot build the nogobgp variant: %v", err)
	}
	for _, c := range []struct {
		v    variant
		want bool
	}{{a, true}, {v, false}} {
		got, err := linksGoBGP(filepath.Join(c.v.dir, "calico"))
		if err != nil {
			b.Skipf("cannot check what is linked: %v", err)
		}
		if got != c.want {
			b.Fatalf("%s: links GoBGP = %v, want %v", c.v.name, got, c.want)
		}
	}
	vs := []variant{a, v}
	pods := []*pod{e.newPod("gc-a"), e.newPod("gc-b")}
	adds := make([][]time.Duration, 2)
	starts := make([][]time.Duration, 2)
	inits := make([][]time.Duration, 2)
	var gobgpInit []time.Duration
	var diffs []time.Duration // a's ADD minus v's in the same round
	b.ResetTimer()
	err = e.inNode(func() error {
		round := func(i int, warm bool) error {
			order := []int{0, 1}
			if i%2 == 1 {
				order = []int{1, 0}
			}
			var d [2]time.Duration
			for _, k := range order {
				cid := fmt.Sprintf("gc%d-%s", i, vs[k].name)
				if warm {
					cid = "warm-" + cid
				}
				t, err := runPlugin(vs[k], "ADD", cid, pods[k].ns, conf)
				if err != nil {
					return err
				}
				if _, err := runPlugin(vs[k], "DEL", cid, pods[k].ns, conf); err != nil {
					return err
				}
				d[k] = t
			}
			if warm {
				return nil
			}
			adds[0], adds[1] = append(adds[0], d[0]), append(adds[1], d[1])
			diffs = append(diffs, d[0]-d[1])
			for _, k := range order {
				t0 := time.Now()
				if err := exec.Command(filepath.Join(vs[k].dir, "calico"), "version").Run(); err != nil {
					return err
				}
				starts[k] = append(starts[k], time.Since(t0))
				if i%10 == 0 {
					tot, g, err := initTrace(vs[k])
					if err != nil {
						return err
					}
					inits[k] = append(inits[k], tot)
					if k == 0 {
						gobgpInit = append(gobgpInit, g)
					}
				}
			}
			return nil
		}
		for i := range 2 {
			if err := round(i, true); err != nil {
				return err
			}
		}
		for i := range gobgpCostRounds {
			if err := round(i, false); err != nil {
				return err
			}
		}
		return nil
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	e.requireClean(b)
	for k, name := range []string{"gobgp", "nogobgp"} {
		b.ReportMetric(pct(adds[k], 0.5), "add-p50-ms-"+name)
		b.ReportMetric(pct(adds[k], 0.9), "add-p90-ms-"+name)
		b.ReportMetric(pct(starts[k], 0.5), "startup-p50-ms-"+name)
		b.ReportMetric(pct(inits[k], 0.5), "init-p50-ms-"+name)
		b.ReportMetric(float64(vs[k].size)/1e6, "size-MB-"+name)
	}
	b.ReportMetric(pct(adds[0], 0.5)-pct(adds[1], 0.5), "add-p50-delta-ms")
	b.ReportMetric(pct(diffs, 0.5), "add-paired-diff-p50-ms")
	b.ReportMetric(pct(starts[0], 0.5)-pct(starts[1], 0.5), "startup-p50-delta-ms")
	b.ReportMetric(pct(gobgpInit, 0.5), "init-gobgp-pkgs-p50-ms")
}
