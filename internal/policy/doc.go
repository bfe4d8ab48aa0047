// Package policy computes a node's network policy: from workload endpoints
// (of every node: remote ones only give set members), host endpoints,
// profiles, NetworkPolicy, GlobalNetworkPolicy, tiers, NetworkSets and
// GlobalNetworkSets it produces the ruleset.Ruleset of the local endpoints,
// with upstream Felix's semantics, and evaluates a Ruleset for one packet
// (what `calicoctl policy explain` prints).
//
// It is pure: no I/O, no clocks, no goroutines; it imports only
// internal/api, internal/selector and internal/ruleset. A Calculator is fed
// incrementally and is not safe for concurrent use (the agent calls it
// under its lock).
//
// # How upstream's model maps here
//
//   - Selectors see an entity's labels plus the labelsToApply of its
//     profiles (its own labels win, then its profiles in order). A workload
//     endpoint also carries projectcalico.org/namespace,
//     projectcalico.org/orchestrator and, with a serviceAccountName,
//     projectcalico.org/serviceaccount; labels it carries with the pcns. or
//     pcsa. prefixes are dropped (an endpoint cannot claim another
//     namespace's labels). A NetworkSet carries its namespace label and
//     inherits the kns.<namespace> profile, so namespaceSelectors match it.
//   - Namespace labels come from the kns.<namespace> profiles (labelsToApply
//     pcns.<key>), service-account labels from ksa.<namespace>.<name>
//     (pcsa.<key>), as upstream's controllers write them in etcd mode. A
//     namespaceSelector (rule or GlobalNetworkPolicy) is rewritten onto the
//     pcns. keys, all() meaning "any namespaced entity" and global() "any
//     non-namespaced one"; serviceAccounts onto pcsa. keys and the
//     serviceaccount label.
//   - A NetworkPolicy selects only endpoints of its namespace, and its rule
//     selectors (selector, notSelector) are scoped to its namespace unless
//     the rule has a namespaceSelector.
//   - Tiers are ordered by order (none = last) then name, policies inside a
//     tier likewise; a policy's types default to Ingress, plus Egress when it
//     has egress rules (api.DefaultPolicyTypes). A tier applies to an
//     endpoint in a direction only if one of its policies selects the
//     endpoint and has that type. A policy in a tier that does not exist is
//     still applied, as upstream: its tier sorts after every existing tier
//     and denies at its end.
//   - Workload endpoints without addresses are ignored, as upstream's syncer
//     does.
//   - A rule upstream cannot enforce here either never matches: `services`
//     (no Kubernetes Services exist in etcd mode, so upstream's sets are
//     empty too) and `http` (an HTTP match only narrows an Allow; validation
//     refuses both on write).
package policy
