// Package api holds the projectcalico.org/v3 resource kinds as upstream
// Calico stores them in etcd: Go types whose JSON is field-for-field the
// upstream JSON, the defaults upstream applies, field validation, the etcd
// key layout, and the IPAM objects (blocks, affinities, handles, config).
//
// It does no I/O and imports nothing from the project except the selector
// language, so every other package can depend on it. Validation that needs
// the datastore (overlapping pools, existing blocks, tiers that must exist)
// lives with the datastore client, not here.
package api
