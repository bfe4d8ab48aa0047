// Package version holds the build identity stamped in by the linker
// (-ldflags "-X github.com/onecalico/calico/internal/version.Version=...").
// It imports nothing from the project and has no init work.
package version

import "runtime"

// Set by the linker; the defaults are what `go run` and `go test` see.
var (
	// Version is the release version, e.g. "v0.1.0" or a git describe string.
	Version = "v0.0.0-dev"
	// Commit is the full git commit the binary was built from.
	Commit = "unknown"
)

// GoVersion is the Go toolchain the binary was built with.
func GoVersion() string { return runtime.Version() }
