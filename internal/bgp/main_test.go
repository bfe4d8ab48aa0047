package bgp

import (
	"os"
	"testing"

	"github.com/onecalico/calico/internal/testutil"
)

// The speakers of these tests listen on 127.0.0.x: in a network namespace
// of the test binary's own (testutil.RunInOwnNetNS).
func TestMain(m *testing.M) { os.Exit(testutil.RunInOwnNetNS(m.Run)) }
