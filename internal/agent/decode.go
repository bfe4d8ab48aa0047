package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/onecalico/calico/internal/api"
)

// leanNode is the part of a stored Node the daemon reads (nodeFromAPI):
// decoding only it skips the object metadata it never uses (uid,
// timestamps, annotations, owner references) and the Node's orchestrator
// references, addresses, interfaces and status. Every node decodes every
// Node at each change of any of them (N² at a cold start).
type leanNode struct {
	Metadata struct {
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		BGP                  *api.NodeBGPSpec `json:"bgp"`
		IPv4VXLANTunnelAddr  string           `json:"ipv4VXLANTunnelAddr"`
		VXLANTunnelMACAddr   string           `json:"vxlanTunnelMACAddr"`
		IPv6VXLANTunnelAddr  string           `json:"ipv6VXLANTunnelAddr"`
		VXLANTunnelMACAddrV6 string           `json:"vxlanTunnelMACAddrV6"`
	} `json:"spec"`
}

// nodeFromJSON decodes a watched Node into the model's Node, named after
// its key.
func nodeFromJSON(key string, value []byte) (Node, error) {
	var l leanNode
	if err := json.Unmarshal(value, &l); err != nil {
		return Node{}, fmt.Errorf("decode %s: %w", key, err)
	}
	r := api.Node{Spec: api.NodeSpec{BGP: l.Spec.BGP, IPv4VXLANTunnelAddr: l.Spec.IPv4VXLANTunnelAddr,
		VXLANTunnelMACAddr: l.Spec.VXLANTunnelMACAddr, IPv6VXLANTunnelAddr: l.Spec.IPv6VXLANTunnelAddr,
		VXLANTunnelMACAddrV6: l.Spec.VXLANTunnelMACAddrV6}}
	r.Labels = l.Metadata.Labels
	n := nodeFromAPI(&r)
	n.Name = strings.TrimPrefix(key, prefixNodes)
	return n, nil
}

// NodeFromJSON is how the daemon decodes a watched Node (for the scale
// floor, which must decode as the daemon does).
func NodeFromJSON(key string, value []byte) (Node, error) { return nodeFromJSON(key, value) }

// BlockFromJSON is how the daemon decodes a watched block (for the scale
// floor).
func BlockFromJSON(key string, value []byte) (Block, error) { return blockFromJSON(key, value) }

// allocList is a block's allocations: per ordinal the index of its
// attribute, or -1 for a free ordinal (null). It parses the array itself:
// through reflection each of a /26's 64 entries cost a step and each
// allocated one an int on the heap, and every node decodes every block
// (N² at a cold start).
type allocList []int32

// UnmarshalJSON reads an array of nulls and non-negative integers (what
// upstream stores); anything else is an error, as encoding/json would
// give for []*int (a negative number is kept as -1: no attribute).
func (l *allocList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*l = nil
		return nil
	}
	out := (*l)[:0]
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return fmt.Errorf("allocations: want an array, got %.20q", b)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		*l = out
		return nil
	}
	for {
		v, n, err := allocEntry(b[i:])
		if err != nil {
			return err
		}
		out = append(out, v)
		i = skipSpace(b, i+n)
		if i >= len(b) {
			return errors.New("allocations: unterminated array")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			*l = out
			return nil
		default:
			return fmt.Errorf("allocations: unexpected %q", b[i])
		}
	}
}

// allocEntry reads one entry at the start of b: null (-1) or an integer.
// It returns the value and how many bytes it took.
func allocEntry(b []byte) (int32, int, error) {
	if len(b) >= 4 && string(b[:4]) == "null" {
		return -1, 4, nil
	}
	neg := len(b) > 0 && b[0] == '-'
	i := 0
	if neg {
		i = 1
	}
	var v int64
	start := i
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + int64(b[i]-'0')
		if v > 1<<31-1 {
			return 0, 0, errors.New("allocations: attribute index out of range")
		}
	}
	if i == start {
		return 0, 0, fmt.Errorf("allocations: want null or an integer, got %.20q", b)
	}
	if neg {
		return -1, i, nil
	}
	return int32(v), i, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
