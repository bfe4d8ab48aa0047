// Package testutil holds helpers for the project's tests: a real embedded
// etcd, throwaway network namespaces and the root gate. It is imported only
// from _test.go files.
package testutil
