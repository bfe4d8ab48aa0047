package install

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// dryRunStep prints what Install would do for one step: a new file with its
// content, a changed file as a line diff, a link with its target, a binary
// by size and checksum. Secrets print as <redacted>.
func dryRunStep(w io.Writer, s step, o Options) {
	it := s.item
	switch s.verb {
	case Unchanged:
		fmt.Fprintf(w, "%-9s %s\n", Unchanged, it.Path)
		return
	case Kept:
		fmt.Fprintf(w, "%-9s %s%s\n", Kept, it.Path, s.note)
		return
	}
	verb := map[string]string{Created: "create", Updated: "update", Replaced: "replace"}[s.verb]
	switch {
	case it.Kind == KindSymlink:
		fmt.Fprintf(w, "would %s %s -> %s\n", verb, it.Path, it.Target)
	case it.Source != "":
		fmt.Fprintf(w, "would %s %s (mode %04o): a copy of %s, %d bytes, sha256 %s\n", verb, it.Path, it.Mode, it.Source, s.want.size, s.want.sha256)
	case s.verb == Created || s.cur.kind != KindFile || s.cur.size > 1<<20:
		fmt.Fprintf(w, "would %s %s (mode %04o):\n", verb, it.Path, it.Mode)
		for _, l := range lines(redact(string(it.Data), it.Redact)) {
			fmt.Fprintf(w, "    %s\n", l)
		}
	default:
		old, err := os.ReadFile(o.host(it.Path))
		if err != nil {
			fmt.Fprintf(w, "would %s %s: cannot read it: %v\n", verb, it.Path, err)
			return
		}
		mode := ""
		if s.cur.mode != it.Mode {
			mode = fmt.Sprintf(" (mode %04o -> %04o)", s.cur.mode, it.Mode)
		}
		fmt.Fprintf(w, "would %s %s%s:\n", verb, it.Path, mode)
		for _, l := range diff(lines(redact(string(old), it.Redact)), lines(redact(string(it.Data), it.Redact))) {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

// redact replaces what follows each prefix on a line of s.
func redact(s string, prefixes []string) string {
	ls := strings.Split(s, "\n")
	for i, l := range ls {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				ls[i] = p + "<redacted>"
			}
		}
	}
	return strings.Join(ls, "\n")
}

func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// diff is a line diff of a and b (longest common subsequence): lines only
// in a start with "-", only in b with "+", common ones with " ". The files
// are small (a few dozen lines), so the quadratic table is fine.
func diff(a, b []string) []string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			out = append(out, "  "+a[i])
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, "- "+a[i])
			i++
		default:
			out = append(out, "+ "+b[j])
			j++
		}
	}
	return out
}
