package api

import (
	"sort"
	"strings"
)

// KindInfo describes one resource kind: its names, where it lives in etcd,
// and how to make an empty value of it.
type KindInfo struct {
	Kind       string          // "IPPool"
	Plural     string          // "ippools": the etcd key segment
	Namespaced bool            // keys carry a namespace segment
	Aliases    []string        // other names calicoctl accepts ("pool", "ipp", ...)
	New        func() Resource // a zero value with TypeMeta filled in
}

// kinds is the registry of every kind this project reads and writes, in
// calicoctl's order. It is a plain literal: no init-time work.
var kinds = []KindInfo{
	{Kind: KindBGPConfiguration, Plural: "bgpconfigurations", Aliases: []string{"bgpconfig", "bgpconfigs"}, New: func() Resource { return NewBGPConfiguration() }},
	{Kind: KindBGPFilter, Plural: "bgpfilters", Aliases: []string{"bgpf", "bgpfs", "bf", "bfs"}, New: func() Resource { return NewBGPFilter() }},
	{Kind: KindBGPPeer, Plural: "bgppeers", Aliases: []string{"bgpp", "bgpps", "bp", "bps"}, New: func() Resource { return NewBGPPeer() }},
	{Kind: KindClusterInformation, Plural: "clusterinformations", Aliases: []string{"clusterinfo", "clusterinfos"}, New: func() Resource { return NewClusterInformation() }},
	{Kind: KindFelixConfiguration, Plural: "felixconfigurations", Aliases: []string{"felixconfig", "felixconfigs"}, New: func() Resource { return NewFelixConfiguration() }},
	{Kind: KindGlobalNetworkPolicy, Plural: "globalnetworkpolicies", Aliases: []string{"gnp", "gnps", "globalpolicy", "globalpolicies"}, New: func() Resource { return NewGlobalNetworkPolicy() }},
	{Kind: KindGlobalNetworkSet, Plural: "globalnetworksets", Aliases: []string{"globalnetset", "globalnetsets", "gnetset", "gnetsets"}, New: func() Resource { return NewGlobalNetworkSet() }},
	{Kind: KindHostEndpoint, Plural: "hostendpoints", Aliases: []string{"hep", "heps"}, New: func() Resource { return NewHostEndpoint() }},
	{Kind: KindIPAMConfiguration, Plural: "ipamconfigurations", Aliases: []string{"ipamconfig", "ipamconfigs"}, New: func() Resource { return NewIPAMConfiguration() }},
	{Kind: KindIPPool, Plural: "ippools", Aliases: []string{"ipp", "ipps", "pool", "pools"}, New: func() Resource { return NewIPPool() }},
	{Kind: KindIPReservation, Plural: "ipreservations", Aliases: []string{"reservation", "reservations", "ipr", "iprs"}, New: func() Resource { return NewIPReservation() }},
	{Kind: KindKubeControllersConfiguration, Plural: "kubecontrollersconfigurations", Aliases: []string{"kubecontrollersconfig", "kubecontrollersconfigs", "kcc", "kccs"}, New: func() Resource { return NewKubeControllersConfiguration() }},
	{Kind: KindNetworkPolicy, Plural: "networkpolicies", Namespaced: true, Aliases: []string{"policy", "policies", "pol", "pols", "np", "nps"}, New: func() Resource { return NewNetworkPolicy() }},
	{Kind: KindNetworkSet, Plural: "networksets", Namespaced: true, Aliases: []string{"netset", "netsets"}, New: func() Resource { return NewNetworkSet() }},
	{Kind: KindNode, Plural: "nodes", Aliases: []string{"no", "nos"}, New: func() Resource { return NewNode() }},
	{Kind: KindProfile, Plural: "profiles", Aliases: []string{"pro", "pros"}, New: func() Resource { return NewProfile() }},
	{Kind: KindTier, Plural: "tiers", New: func() Resource { return NewTier() }},
	{Kind: KindWorkloadEndpoint, Plural: "workloadendpoints", Namespaced: true, Aliases: []string{"wep", "weps"}, New: func() Resource { return NewWorkloadEndpoint() }},
}

// Kinds returns every registered kind, sorted by kind name.
func Kinds() []KindInfo {
	out := append([]KindInfo(nil), kinds...)
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// LookupKind finds a kind by any of the names calicoctl accepts: the kind
// ("IPPool"), its lower case, the plural, or an alias. Case-insensitive.
func LookupKind(name string) (KindInfo, bool) {
	n := strings.ToLower(name)
	for _, k := range kinds {
		if n == strings.ToLower(k.Kind) || n == k.Plural {
			return k, true
		}
		for _, a := range k.Aliases {
			if n == a {
				return k, true
			}
		}
	}
	return KindInfo{}, false
}

// KindOf returns the registry entry for a resource value's kind.
func KindOf(r Resource) (KindInfo, bool) {
	return LookupKind(r.GetTypeMeta().Kind)
}
