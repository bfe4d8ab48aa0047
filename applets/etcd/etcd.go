// Package etcd is the `calico etcd` applet: an embedded single-member etcd
// server, the zero-setup datastore for one host, the demo and trying things
// out. Production uses an external etcd cluster through ETCD_ENDPOINTS.
//
// Why the server is a separate program inside the binary: Go runs the
// package initialisers of every linked package on every start, and the etcd
// server's (hundreds of Prometheus metrics, protobuf descriptors, raft)
// cost about 10 ms per exec on a 2-core machine. That would double the
// start-up of every CNI ADD and IPAM call. So the server is built as its own
// static program (../serverprog), embedded here gzip-compressed, and executed
// from an in-memory file when, and only when, `calico etcd` runs. The user
// still installs and runs one file.
package etcd

import (
	"bytes"
	"compress/gzip"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"syscall"

	"github.com/onecalico/calico/internal/startup"
	"golang.org/x/sys/unix"
)

//go:embed embedded
var embedded embed.FS

const programFile = "embedded/etcd-server.gz"

// Main replaces this process with the embedded etcd server program.
func Main(args []string) int {
	startup.Restore()
	if err := run(args); err != nil {
		fmt.Fprintf(os.Stderr, "calico etcd: %v\n", err)
		return 1
	}
	return 0 // not reached: run only returns on error
}

func run(args []string) error {
	gz, err := embedded.ReadFile(programFile)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("this binary was built without the embedded etcd server; build it with `make build`")
	}
	if err != nil {
		return err
	}
	f, err := programFD()
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return fmt.Errorf("embedded etcd server: %w", err)
	}
	if _, err := io.Copy(f, zr); err != nil {
		return fmt.Errorf("unpack embedded etcd server: %w", err)
	}
	path := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	argv := append([]string{"calico-etcd"}, args...)
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec embedded etcd server: %w", err)
	}
	return nil
}

// programFD returns a writable, executable, anonymous file: a memfd, or an
// unlinked temporary file where memfds cannot be executed.
func programFD() (*os.File, error) {
	if fd, err := unix.MemfdCreate("calico-etcd", 0); err == nil {
		return os.NewFile(uintptr(fd), "calico-etcd"), nil
	}
	f, err := os.CreateTemp("", "calico-etcd-")
	if err != nil {
		return nil, fmt.Errorf("create a file for the embedded etcd server: %w", err)
	}
	if err := f.Chmod(0o700); err != nil {
		f.Close()
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}
