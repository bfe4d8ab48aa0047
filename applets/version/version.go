// Package version is the `calico version` applet: it prints the build identity.
package version

import (
	"fmt"
	"io"
	"os"

	"github.com/onecalico/calico/internal/startup"
	v "github.com/onecalico/calico/internal/version"
)

// Main prints the version, commit and Go version; it takes no arguments.
func Main(args []string) int {
	startup.Restore()
	if len(args) > 0 {
		fmt.Fprintln(os.Stderr, "usage: calico version")
		return 2
	}
	Print(os.Stdout)
	return 0
}

// Print writes the three version lines.
func Print(w io.Writer) {
	fmt.Fprintf(w, "Version:    %s\nGit commit: %s\nGo version: %s\n", v.Version, v.Commit, v.GoVersion())
}
