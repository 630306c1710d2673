// Package repeated holds the one repeatable string flag of the repository's
// commands.
package repeated

import (
	"flag"
	"strings"
)

// Strings is a flag.Value that collects every occurrence of a repeatable
// flag, in order.
type Strings []string

var _ flag.Value = (*Strings)(nil)

// String joins the values with ", ", for flag's help output.
func (s *Strings) String() string { return strings.Join(*s, ", ") }

// Set appends v; it never fails.
func (s *Strings) Set(v string) error { *s = append(*s, v); return nil }
