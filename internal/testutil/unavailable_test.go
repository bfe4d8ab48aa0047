package testutil

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestUnavailableFailsUnderCI runs a child test that needs a command that
// does not exist: without CI it is skipped with the reason, with CI=true
// the run fails.
func TestUnavailableFailsUnderCI(t *testing.T) {
	if os.Getenv("TESTUTIL_CHILD") == "1" {
		RequireCmd(t, "no-such-tool-for-calico-tests")
		t.Log("the child test ran past RequireCmd")
		return
	}
	for _, tc := range []struct {
		ci       string
		wantFail bool
		want     string
	}{
		{"", false, "--- SKIP"},
		{"false", false, "--- SKIP"},
		{"true", true, "--- FAIL"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUnavailableFailsUnderCI$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "TESTUTIL_CHILD=1", "CI="+tc.ci)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.wantFail || !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "no-such-tool-for-calico-tests") {
			t.Errorf("CI=%q: err %v, want failure %v and %q with the reason; output:\n%s", tc.ci, err, tc.wantFail, tc.want, out)
		}
		if strings.Contains(string(out), "ran past") {
			t.Errorf("CI=%q: the test body ran although the tool is missing", tc.ci)
		}
	}
}
