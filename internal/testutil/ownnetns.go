package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/vishvananda/netlink"
)

// ownNetNSEnv marks the test binary re-run inside its own namespace.
const ownNetNSEnv = "CALICO_TEST_OWN_NETNS"

// RunInOwnNetNS runs a package's tests (run, usually m.Run) in a network
// namespace of their own, for packages whose tests listen on loopback
// (in-process BGP speakers on 127.0.0.x, a TCP reachability check): as
// root the test binary runs itself again in a new network namespace
// (CLONE_NEWNET, so every thread of it is there from the start), which
// brings its loopback up, and the namespace goes away with the process;
// nothing listens in the machine's own namespace. Not root, the tests run
// here with a visible line; under CI=true (which runs as root) that is a
// failure instead.
func RunInOwnNetNS(run func() int) int {
	if os.Getenv(ownNetNSEnv) == "1" {
		if err := loopbackUp(); err != nil {
			fmt.Fprintln(os.Stderr, "own network namespace:", err)
			return 1
		}
		return run()
	}
	if os.Geteuid() != 0 {
		if InCI() {
			fmt.Fprintln(os.Stderr, "CI=true and these tests cannot get a network namespace of their own: not root")
			return 1
		}
		fmt.Fprintln(os.Stderr, "not root: these tests listen on loopback in this network namespace (as root they get one of their own)")
		return run()
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), ownNetNSEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	default:
		fmt.Fprintln(os.Stderr, "run the tests in a network namespace of their own:", err)
		return 1
	}
}

// loopbackUp sets lo up in the current (new) network namespace.
func loopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}
