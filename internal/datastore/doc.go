// Package datastore stores projectcalico.org/v3 resources in a kv.Store in
// upstream Calico's exact key and JSON layout (Client), and holds the checks
// that need to read the datastore (overlapping pools, blocks of another size).
//
// It imports only internal/api and internal/kv. The backends live in the
// subpackages etcd (the real one) and memory (for unit tests of pure logic).
package datastore
