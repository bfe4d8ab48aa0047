// Command calico is Calico's node networking in one static binary. What it
// does depends on the name it is run under (argv[0], as busybox does), or on
// its first argument:
//
//	calico (with CNI_COMMAND set)  CNI plugin             also: calico cni
//	calico-ipam                    CNI IPAM plugin        also: calico ipam
//	calico-node                    node daemon            also: calico node
//	calicoctl                      admin CLI              also: calico ctl
//	                               embedded etcd server   calico etcd
//	                               build version          calico version (also --version, -v)
//	                               this help              calico help (also --help, -h)
//
// main only dispatches: every applet is a package under applets/ with
// `func Main(args []string) int`.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/onecalico/calico/applets/cni"
	"github.com/onecalico/calico/applets/ctl"
	"github.com/onecalico/calico/applets/etcd"
	"github.com/onecalico/calico/applets/install"
	"github.com/onecalico/calico/applets/ipam"
	"github.com/onecalico/calico/applets/node"
	"github.com/onecalico/calico/applets/version"
)

// applets maps an applet name to its entry point.
var applets = map[string]func(args []string) int{
	"-t":      cni.TestConnection, // upstream's `calico -t` datastore connection test
	"cni":     cni.Main,
	"ctl":     ctl.Main,
	"etcd":    etcd.Main,
	"install": install.Main,
	"node":    node.Main,
	"ipam":    ipam.Main,
	"version": version.Main,
}

// answers maps the first arguments users try on `calico` itself to the
// applet that answers them ("help" is main's own usage text).
var answers = map[string]string{
	"--help":    "help",
	"--version": "version",
	"-h":        "help",
	"-v":        "version",
	"help":      "help",
}

// argv0Names maps the names the binary is installed under to applets.
var argv0Names = map[string]string{
	"calico-node": "node",
	"calico-ipam": "ipam",
	"calicoctl":   "ctl",
}

func main() {
	os.Exit(dispatch(os.Args, os.Getenv, os.Stdout, os.Stderr))
}

// dispatch picks the applet: by argv[0], then CNI_COMMAND for `calico`, then
// by the first argument (or a help or version option); otherwise it lists the
// applets and returns 2.
func dispatch(argv []string, getenv func(string) string, stdout, stderr io.Writer) int {
	base := filepath.Base(argv[0])
	if name, ok := argv0Names[base]; ok {
		return applets[name](argv[1:])
	}
	if len(argv) > 1 {
		if run, ok := applets[argv[1]]; ok {
			return run(argv[2:])
		}
	}
	if cni, ok := applets["cni"]; ok && getenv("CNI_COMMAND") != "" {
		return cni(argv[1:])
	}
	if len(argv) == 2 {
		switch answers[argv[1]] {
		case "help":
			usage(stdout, "")
			return 0
		case "version":
			return applets["version"](nil)
		}
	}
	usage(stderr, base+": unknown applet; ")
	return 2
}

// usage lists the applets behind problem ("" when help was asked for).
func usage(w io.Writer, problem string) {
	names := make([]string, 0, len(applets))
	for n := range applets {
		if !strings.HasPrefix(n, "-") { // options such as -t are listed below
			names = append(names, n)
		}
	}
	sort.Strings(names)
	fmt.Fprintf(w, "%susage: calico <applet> [args...]; calico --help, calico --version\napplets:\n", problem)
	for _, n := range names {
		fmt.Fprintf(w, "  %s\n", n)
	}
	fmt.Fprintln(w, "calico -t tests the datastore connection named by the netconf on stdin (as upstream's CNI binary)")
	fmt.Fprintln(w, "also runs as calico-ipam, calico-node and calicoctl (by symlink name), and as the CNI plugin when CNI_COMMAND is set")
}
