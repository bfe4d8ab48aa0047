package agent

import "testing"

func TestSoftLimit(t *testing.T) {
	for _, tc := range []struct{ live, want int64 }{
		{0, minSoftLimit},
		{20 << 20, 42 << 20},
		{40 << 20, 72 << 20},
		{400 << 20, 612 << 20},
	} {
		if got := softLimit(tc.live); got != tc.want {
			t.Errorf("softLimit(%d MiB) = %d MiB, want %d MiB", tc.live>>20, got>>20, tc.want>>20)
		}
	}
}
