package agent

import (
	"regexp"
	"sync"
)

// lazyRegexp compiles pattern on first use. Package-level regexps would be
// compiled at every start of the multi-call binary, CNI calls included.
func lazyRegexp(pattern string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })
}
