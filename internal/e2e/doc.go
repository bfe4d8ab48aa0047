// Package e2e holds the project's end-to-end tests: a three-node lab built
// from network namespaces (n1 and n2 on 10.99.0.0/24, n3 on 10.98.0.0/24
// behind a router, an "external" host at 203.0.113.10 that has no route to
// any pod pool), one real etcd, a real calico-node process per node, pods
// added through the real CNI exec path (the calico plugin binary with
// calico-ipam), resources changed with the real calicoctl, and real packets
// (ping, TCP, UDP) to check what the kernel does.
//
// The tests need root (they skip with a visible reason otherwise) and the
// ip and ping commands; they build the calico binary once unless
// $CALICO_BIN names a directory holding it (make test).
//
// The package has no non-test code. Its tests use internal/agent/labtest
// and internal/testutil and never touch the root network namespace.
package e2e
