// Package testutil holds helpers shared by tests: throwaway network
// namespaces for privileged tests, running observer commands inside them,
// and polling with deadlines. It is imported only from _test.go files.
package testutil
