package ctl

import (
	"io"
	"regexp"
	"strings"
)

// numericCell matches the cells tablewriter right-aligns: plain numbers.
var numericCell = regexp.MustCompile(`^-?(?:\d{1,3}(?:,\d{3})*|\d+)(?:\.\d+)?$`)

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
			if numericCell.MatchString(strings.TrimSpace(c)) {
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
