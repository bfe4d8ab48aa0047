// Command serverprog is the etcd server program that `calico etcd` runs.
// The Makefile builds it and embeds it, compressed, in the calico binary;
// it is not installed on its own.
package main

import (
	"os"

	"github.com/onecalico/calico/applets/etcd/server"
)

func main() { os.Exit(server.Main(os.Args[1:])) }
