package agent

import (
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
)

// Values as a cold start delivers them to every node: a registered Node
// (upstream's layout, calico-etcd-dump.txt, with the tunnel fields) and a
// block holding only its node's tunnel address.
const (
	benchNodeJSON  = `{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"node1","uid":"291ad957-c340-4d2a-b453-f511c3427bc0","creationTimestamp":"2026-11-21T13:02:53Z"},"spec":{"bgp":{"ipv4Address":"192.0.2.10/24"},"ipv4VXLANTunnelAddr":"10.244.166.128","vxlanTunnelMACAddr":"66:c3:41:36:a1:5b"},"status":{}}`
	benchBlockJSON = `{"cidr":"10.244.166.128/26","affinity":"host:node1","affinity_claim_time":"2026-11-21T13:03:04Z","allocations":[0,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null],"unallocated":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63],"attributes":[{"handle_id":"vxlan-tunnel-addr-node1","secondary":{"node":"node1","type":"vxlanTunnelAddress"}}],"sequenceNumber":1795266184720467414,"sequenceNumberForAllocation":{"0":1795266184720467413},"deleted":false}`
)

// BenchmarkDecodeNode is what one Node event costs a node to decode.
func BenchmarkDecodeNode(b *testing.B) {
	item := &kv.KV{Key: prefixNodes + "node1", Value: []byte(benchNodeJSON), Revision: 12345}
	b.ReportAllocs()
	for b.Loop() {
		n, err := nodeFromJSON(item.Key, item.Value)
		if err != nil || !n.VXLANTunnelAddr.IsValid() {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkDecodeNodeFull is the Node decoded as a whole resource (what
// the handler did before nodeFromJSON).
func BenchmarkDecodeNodeFull(b *testing.B) {
	item := &kv.KV{Key: prefixNodes + "node1", Value: []byte(benchNodeJSON), Revision: 12345}
	b.ReportAllocs()
	for b.Loop() {
		r, err := datastore.Decode(mustKind(api.KindNode), item)
		if err != nil {
			b.Fatal(err)
		}
		if n := nodeFromAPI(r.(*api.Node)); !n.VXLANTunnelAddr.IsValid() {
			b.Fatal(n)
		}
	}
}

// BenchmarkDecodeBlock is what one block event costs a node to decode.
func BenchmarkDecodeBlock(b *testing.B) {
	key := "/calico/ipam/v2/assignment/ipv4/block/10.244.166.128-26"
	b.ReportAllocs()
	for b.Loop() {
		if bl, err := blockFromJSON(key, []byte(benchBlockJSON)); err != nil || bl.Affinity != "node1" {
			b.Fatal(bl, err)
		}
	}
}
