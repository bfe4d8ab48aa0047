// Command serverprog is the etcd server program that `calico etcd` runs.
// The Makefile builds it and embeds it, compressed, in the calico binary;
// it is not installed on its own.
package main

import (
	"os"
	"path/filepath"

	"github.com/onecalico/calico/applets/etcd/server"
)

// processName is what ps, top and ss -p show for the server.
const processName = "calico-etcd"

func main() {
	setName(processName)
	os.Exit(server.Main(os.Args[1:]))
}

// setName names every thread of this process. The kernel names a process
// after the file it executed, and `calico etcd` executes this program from
// /proc/self/fd/<n>, so without this every tool shows it as "<n>". Threads
// the Go runtime starts later inherit the name from the thread that starts
// them. Failing to name it is harmless, so errors are ignored.
func setName(name string) {
	tasks, _ := filepath.Glob("/proc/self/task/*/comm")
	for _, comm := range tasks {
		_ = os.WriteFile(comm, []byte(name), 0)
	}
}
