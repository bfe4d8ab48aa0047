package ipam

import (
	"testing"
	"time"
)

// FuzzBlock: a stored block from anyone (upstream, a broken writer) never
// makes the allocator panic; allocation and release keep it consistent.
func FuzzBlock(f *testing.F) {
	for _, kv := range readDump(f, "upstream-section2.txt")[:4] {
		f.Add([]byte(kv.value))
	}
	f.Add([]byte(`{"cidr":"10.0.0.0/30","allocations":[0,null,0,null],"unallocated":[1,3],"attributes":[{"handle_id":"h"}],"sequenceNumber":5}`))
	f.Add([]byte(`{"cidr":"fd00::/126","allocations":[null,null,null,null],"unallocated":[3,2,1,0],"attributes":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, cidr, err := decodeBlock("k", data)
		if err != nil {
			return
		}
		h := "fuzz"
		got := autoAssignOrdinals(b, cidr, 3, &h, map[string]string{"node": "n"}, nil)
		for _, o := range got {
			if b.Allocations[o] == nil {
				t.Fatalf("ordinal %d assigned but not marked", o)
			}
		}
		releaseOrdinals(b, ordinalsOfHandle(b, h), true, cooldown{})
		_ = blockEmpty(b)
		if _, _, err := decodeBlock("k", encodeBlock(b)); err != nil {
			t.Fatalf("our own encoding does not decode: %v", err)
		}
		_ = newBlock(cidr, "host:n", time.Unix(0, 1))
	})
}
