// Package testutil holds helpers for the project's tests: a real embedded
// etcd (on unix sockets, so no network port is used), throwaway network
// namespaces, the root gate, and polling helpers. It is imported only from
// _test.go files.
package testutil
