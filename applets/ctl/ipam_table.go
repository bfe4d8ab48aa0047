package ctl

import (
	"io"
	"strings"
)

// numericCell reports whether tablewriter would right-align the cell:
// a plain number such as 65536, -1 or 3.5.
func numericCell(s string) bool {
	s = strings.TrimPrefix(s, "-")
	intPart, frac, hasFrac := strings.Cut(s, ".")
	digits := func(x string) bool {
		if x == "" {
			return false
		}
		for _, r := range x {
			if r < '0' || r > '9' {
				return false
			}
		}
		return true
	}
	return digits(intPart) && (!hasFrac || digits(frac))
}

// renderBoxTable prints a table in the boxed style of upstream calicoctl's
// `ipam` commands (olekukonko/tablewriter defaults): centred upper-case
// headers, one space of padding, numbers right-aligned and text
// left-aligned, a rule under the header and at the bottom.
func renderBoxTable(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = len(h)
	}
	for _, r := range rows {
		for i, c := range r {
			if i < len(widths) && len(c) > widths[i] {
				widths[i] = len(c)
			}
		}
	}
	var b strings.Builder
	rule := func() {
		b.WriteByte('+')
		for _, n := range widths {
			b.WriteString(strings.Repeat("-", n+2))
			b.WriteByte('+')
		}
		b.WriteByte('\n')
	}
	rule()
	b.WriteByte('|')
	for i, h := range header {
		h = strings.ToUpper(h)
		gap := widths[i] - len(h)
		left := gap / 2
		b.WriteString(" " + strings.Repeat(" ", left) + h + strings.Repeat(" ", gap-left) + " |")
	}
	b.WriteByte('\n')
	rule()
	for _, r := range rows {
		b.WriteByte('|')
		for i := range widths {
			c := ""
			if i < len(r) {
				c = r[i]
			}
			pad := strings.Repeat(" ", widths[i]-len(c))
			if numericCell(strings.TrimSpace(c)) {
				b.WriteString(" " + pad + c + " |")
			} else {
				b.WriteString(" " + c + pad + " |")
			}
		}
		b.WriteByte('\n')
	}
	rule()
	io.WriteString(w, b.String())
}
