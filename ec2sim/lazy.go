package ec2sim

import (
	"regexp"
	"sync"
)

// lazyRegexp compiles expr on first use. The emulator is linked into every
// eipd binary: package-level regexps would be compiled by every `eipd run`
// and `eipd healthcheck`, which never serve an EC2 request.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
