package ctl

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The ps and wide tables of every kind, as upstream's resourcemgr defines
// them. Columns read the resource's JSON tree, so a kind's table works as
// soon as the kind is registered in internal/api; each column prints what
// upstream's Go template prints for the field (a missing bool is "false", a
// missing pointer "<nil>", an empty encapsulation mode "Never").

// obj is a resource as a generic JSON tree (numbers as json.Number).
type obj map[string]any

// get follows a dotted path.
func (o obj) get(path string) (any, bool) {
	var cur any = map[string]any(o)
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// colFunc renders one cell.
type colFunc func(pc *printCtx, o obj) string

// tableSpec is a kind's default (ps) and wide headings and every heading's
// column (custom-columns may name any of them).
type tableSpec struct {
	ps, wide []string
	cols     map[string]colFunc
}

// tableSpecFor returns the table of a kind; an unknown kind gets NAME only.
func tableSpecFor(kind string) tableSpec {
	name := text("metadata.name")
	ns := text("metadata.namespace")
	switch kind {
	case "BGPConfiguration":
		h := []string{"NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"}
		return tableSpec{h, h, map[string]colFunc{
			"NAME":        name,
			"LOGSEVERITY": text("spec.logSeverityScreen"),
			"MESHENABLED": orDash("spec.nodeToNodeMeshEnabled"),
			"ASNUMBER":    orDash("spec.asNumber"),
		}}
	case "BGPPeer":
		h := []string{"NAME", "PEERIP", "NODE", "ASN"}
		return tableSpec{h, h, map[string]colFunc{
			"NAME":   name,
			"PEERIP": text("spec.peerIP"),
			"NODE": func(pc *printCtx, o obj) string {
				if n := text("spec.node")(pc, o); n != "" {
					return n
				}
				if s := text("spec.nodeSelector")(pc, o); s != "" {
					return s
				}
				return "(global)"
			},
			"ASN": orZero("spec.asNumber"),
		}}
	case "ClusterInformation":
		h := []string{"NAME", "CLUSTERGUID", "CLUSTERTYPE", "CALICOVERSION", "DATASTOREREADY"}
		return tableSpec{h, h, map[string]colFunc{
			"NAME":           name,
			"CLUSTERGUID":    text("spec.clusterGUID"),
			"CLUSTERTYPE":    text("spec.clusterType"),
			"CALICOVERSION":  text("spec.calicoVersion"),
			"DATASTOREREADY": orNil("spec.datastoreReady"),
		}}
	case "GlobalNetworkPolicy":
		return tableSpec{[]string{"NAME"}, []string{"NAME", "ORDER", "SELECTOR"}, map[string]colFunc{
			"NAME":     name,
			"ORDER":    orNilFloat("spec.order"),
			"SELECTOR": text("spec.selector"),
		}}
	case "GlobalNetworkSet":
		return tableSpec{[]string{"NAME"}, []string{"NAME", "NETS"}, map[string]colFunc{
			"NAME": name,
			"NETS": joined("spec.nets", 80),
		}}
	case "HostEndpoint":
		return tableSpec{[]string{"NAME", "NODE"}, []string{"NAME", "NODE", "INTERFACE", "IPS", "PROFILES"}, map[string]colFunc{
			"NAME":      name,
			"NODE":      text("spec.node"),
			"INTERFACE": text("spec.interfaceName"),
			"IPS":       joined("spec.expectedIPs", 0),
			"PROFILES":  joined("spec.profiles", 0),
		}}
	case "IPPool":
		return tableSpec{[]string{"NAME", "CIDR", "SELECTOR"},
			[]string{"NAME", "CIDR", "NAT", "IPIPMODE", "VXLANMODE", "DISABLED", "DISABLEBGPEXPORT", "SELECTOR", "ASSIGNMENTMODE"},
			map[string]colFunc{
				"NAME":             name,
				"CIDR":             text("spec.cidr"),
				"NAT":              flag("spec.natOutgoing"),
				"IPIPMODE":         orNever("spec.ipipMode"),
				"VXLANMODE":        orNever("spec.vxlanMode"),
				"DISABLED":         flag("spec.disabled"),
				"DISABLEBGPEXPORT": flag("spec.disableBGPExport"),
				"SELECTOR":         text("spec.nodeSelector"),
				"ASSIGNMENTMODE":   orNil("spec.assignmentMode"),
			}}
	case "IPAMConfiguration":
		return tableSpec{[]string{"NAME", "STRICTAFFINITY", "AUTOALLOCATEBLOCKS"},
			[]string{"NAME", "STRICTAFFINITY", "AUTOALLOCATEBLOCKS", "MAXBLOCKSPERHOST"},
			map[string]colFunc{
				"NAME":               name,
				"STRICTAFFINITY":     flag("spec.strictAffinity"),
				"AUTOALLOCATEBLOCKS": flag("spec.autoAllocateBlocks"),
				"MAXBLOCKSPERHOST":   orZero("spec.maxBlocksPerHost"),
			}}
	case "IPReservation":
		return tableSpec{[]string{"NAME"}, []string{"NAME", "CIDRS"}, map[string]colFunc{
			"NAME":  name,
			"CIDRS": joined("spec.reservedCIDRs", 80),
		}}
	case "NetworkPolicy":
		return tableSpec{[]string{"NAME", "TIER"}, []string{"NAME", "TIER", "ORDER", "SELECTOR"}, map[string]colFunc{
			"NAME":      name,
			"NAMESPACE": ns,
			"TIER":      text("spec.tier"),
			"ORDER":     orNilFloat("spec.order"),
			"SELECTOR":  text("spec.selector"),
		}}
	case "NetworkSet":
		return tableSpec{[]string{"NAME"}, []string{"NAME", "NETS"}, map[string]colFunc{
			"NAME":      name,
			"NAMESPACE": ns,
			"NETS":      joined("spec.nets", 80),
		}}
	case "Node":
		return tableSpec{[]string{"NAME"}, []string{"NAME", "ASN", "IPV4", "IPV6"}, map[string]colFunc{
			"NAME": name,
			"ASN": func(pc *printCtx, o obj) string {
				if b, ok := o.get("spec.bgp"); !ok || b == nil {
					return ""
				}
				if v, ok := o.get("spec.bgp.asNumber"); ok && v != nil {
					return fmtValue(v)
				}
				return "(" + pc.asNumber() + ")"
			},
			"IPV4": text("spec.bgp.ipv4Address"),
			"IPV6": text("spec.bgp.ipv6Address"),
		}}
	case "Profile":
		return tableSpec{[]string{"NAME"}, []string{"NAME", "LABELS"}, map[string]colFunc{
			"NAME":   name,
			"LABELS": joined("spec.labelsToApply", 0),
		}}
	case "Tier":
		h := []string{"NAME", "ORDER"}
		return tableSpec{h, h, map[string]colFunc{
			"NAME":  name,
			"ORDER": orNilFloat("spec.order"),
		}}
	case "WorkloadEndpoint":
		return tableSpec{[]string{"WORKLOAD", "NODE", "NETWORKS", "INTERFACE"},
			[]string{"NAME", "WORKLOAD", "NODE", "NETWORKS", "INTERFACE", "PROFILES", "NATS"},
			map[string]colFunc{
				"NAME":         name,
				"NAMESPACE":    ns,
				"NODE":         text("spec.node"),
				"ORCHESTRATOR": text("spec.orchestrator"),
				"WORKLOAD": func(pc *printCtx, o obj) string {
					if w := text("spec.workload")(pc, o); w != "" {
						return w
					}
					return text("spec.pod")(pc, o)
				},
				"NETWORKS":  joined("spec.ipNetworks", 0),
				"NATS":      nats("spec.ipNATs"),
				"PROFILES":  joined("spec.profiles", 0),
				"INTERFACE": text("spec.interfaceName"),
			}}
	}
	return tableSpec{[]string{"NAME"}, []string{"NAME"}, map[string]colFunc{"NAME": name, "NAMESPACE": ns}}
}

// text prints a field as is; missing prints nothing.
func text(path string) colFunc {
	return func(_ *printCtx, o obj) string {
		v, _ := o.get(path)
		if v == nil {
			return ""
		}
		return fmtValue(v)
	}
}

// flag prints a plain bool field: missing (omitted when false) is "false".
func flag(path string) colFunc {
	return func(_ *printCtx, o obj) string {
		if v, ok := o.get(path); ok && v == true {
			return "true"
		}
		return "false"
	}
}

// orNever prints an encapsulation mode, "Never" when unset.
func orNever(path string) colFunc {
	return func(pc *printCtx, o obj) string {
		if s := text(path)(pc, o); s != "" {
			return s
		}
		return "Never"
	}
}

// orNil prints a pointer field: "<nil>" when unset, as Go templates do.
func orNil(path string) colFunc {
	return func(_ *printCtx, o obj) string {
		if v, ok := o.get(path); ok && v != nil {
			return fmtValue(v)
		}
		return "<nil>"
	}
}

// orDash prints a pointer field, "-" when unset.
func orDash(path string) colFunc {
	return func(_ *printCtx, o obj) string {
		if v, ok := o.get(path); ok && v != nil {
			return fmtValue(v)
		}
		return "-"
	}
}

// orZero prints a plain number field: missing (omitted when zero) is "0".
func orZero(path string) colFunc {
	return func(_ *printCtx, o obj) string {
		if v, ok := o.get(path); ok && v != nil {
			return fmtValue(v)
		}
		return "0"
	}
}

// joined joins a list with "," (or a map's sorted k=v pairs), cut to max when max > 0.
func joined(path string, max int) colFunc {
	return func(_ *printCtx, o obj) string {
		v, _ := o.get(path)
		var parts []string
		switch t := v.(type) {
		case []any:
			for _, e := range t {
				parts = append(parts, fmtValue(e))
			}
		case map[string]any:
			for k, e := range t {
				parts = append(parts, k+"="+fmtValue(e))
			}
			sort.Strings(parts)
		case nil:
		default:
			parts = []string{fmtValue(t)}
		}
		return truncate(strings.Join(parts, ","), max)
	}
}

// nats prints IPNATs as Go prints the structs: {internal external}.
func nats(path string) colFunc {
	return func(_ *printCtx, o obj) string {
		v, _ := o.get(path)
		l, _ := v.([]any)
		parts := make([]string, 0, len(l))
		for _, e := range l {
			m, _ := e.(map[string]any)
			in, _ := m["internalIP"].(string)
			ex, _ := m["externalIP"].(string)
			parts = append(parts, "{"+in+" "+ex+"}")
		}
		return strings.Join(parts, ",")
	}
}

// fmtValue prints a JSON value as Go's %v prints the field it came from
// (numbers as written: integers stay integers).
func fmtValue(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		return strconv.FormatBool(t)
	}
	return fmt.Sprint(v)
}

// orNilFloat prints a *float64 field (policy and tier order) as Go's %v
// prints a float64: 1000, 1e+06; "<nil>" when unset.
func orNilFloat(path string) colFunc {
	return func(_ *printCtx, o obj) string {
		v, ok := o.get(path)
		if !ok || v == nil {
			return "<nil>"
		}
		if n, ok := v.(json.Number); ok {
			if f, err := n.Float64(); err == nil {
				return fmt.Sprint(f)
			}
		}
		return fmtValue(v)
	}
}
