// Package envoybootstraps holds Envoy's own integration bootstraps
// (envoyproxy/envoy test/config/integration: server.yaml,
// server_multiple_addresses.yaml, server_unix_listener.yaml; Apache License
// 2.0), unchanged, and templates them exactly as Envoy's
// test/integration/hotrestart_test.sh does before it hot restarts Envoy
// through them.
package envoybootstraps

import (
	"embed"
	"fmt"
	"regexp"
	"strings"
)

//go:embed *.yaml
var templates embed.FS

// Variant is one bootstrap hotrestart_test.sh builds: an upstream file and
// the values its sed lines put in.
type Variant struct {
	// Name says which of the test's bootstraps this is, for example
	// "v4" or "uds_io_uring".
	Name string
	// File is the upstream template.
	File string
	// Loopback is {{ ip_loopback_address }}, ReusePort {{ enable_reuse_port }}.
	Loopback  string
	ReusePort bool
	// DNSLookupFamily is {{ dns_lookup_family }}, written as the test
	// writes it (V4_ONLY, or v6_only in lower case).
	DNSLookupFamily string
	// IOURing is {{ enable_io_uring }}; the test runs every variant both ways.
	IOURing bool
}

// Variants lists the bootstraps hotrestart_test.sh builds, in its order:
// for io_uring off then on, IPv4, IPv6, a unix listener, reuse port and
// multiple addresses with reuse port.
func Variants() []Variant {
	var vs []Variant
	for _, uring := range []bool{false, true} {
		suffix := ""
		if uring {
			suffix = "_io_uring"
		}
		vs = append(vs,
			Variant{Name: "v4" + suffix, File: "server.yaml", Loopback: "127.0.0.1", DNSLookupFamily: "V4_ONLY", IOURing: uring},
			Variant{Name: "v6" + suffix, File: "server.yaml", Loopback: "::1", DNSLookupFamily: "v6_only", IOURing: uring},
			Variant{Name: "uds" + suffix, File: "server_unix_listener.yaml", Loopback: "127.0.0.1", IOURing: uring},
			Variant{Name: "reuse_port" + suffix, File: "server.yaml", Loopback: "127.0.0.1", ReusePort: true, DNSLookupFamily: "V4_ONLY", IOURing: uring},
			Variant{Name: "multiple_addresses" + suffix, File: "server_multiple_addresses.yaml", Loopback: "127.0.0.1", ReusePort: true, DNSLookupFamily: "V4_ONLY", IOURing: uring},
		)
	}
	return vs
}

var upstreamPort = regexp.MustCompile(`\{\{ upstream_. \}\}`)

// retiredIOURingField brings DefaultSocketInterface's enable_io_uring, the
// newest upstream text reachable here, to the API this project parses
// against (go-control-plane v1.40.0), where Envoy replaced the bool with an
// io_uring_options message: "true" becomes an empty io_uring_options, and
// "false" the absent field. Verbatim, an Envoy built on that API rejects
// the line as an unknown field, and so does fakeenvoy.
func retiredIOURingField(line string) string {
	indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
	switch strings.TrimSpace(line) {
	case `enable_io_uring: "true"`:
		return indent + "io_uring_options: {}\n"
	case `enable_io_uring: "false"`:
		return ""
	}
	return line
}

// Verbatim is the upstream template file as Envoy's tree has it.
func Verbatim(file string) ([]byte, error) { return templates.ReadFile(file) }

// Render is the variant's bootstrap with testTmpdir for {{ test_tmpdir }}
// and socketDir for {{ socket_dir }}. Like the test's sed lines, each
// substitution but the upstream ports replaces the first match of a line.
func (v Variant) Render(testTmpdir, socketDir string) ([]byte, error) {
	text, err := templates.ReadFile(v.File)
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap %s: %w", v.File, err)
	}
	subst := []struct{ from, to string }{
		{"{{ socket_dir }}", socketDir},
		{"{{ test_tmpdir }}", testTmpdir},
		{"{{ ip_loopback_address }}", v.Loopback},
		{"{{ enable_reuse_port }}", fmt.Sprint(v.ReusePort)},
		{"{{ dns_lookup_family }}", v.DNSLookupFamily},
		{"{{ null_device_path }}", "/dev/null"},
		{"{{ enable_io_uring }}", fmt.Sprint(v.IOURing)},
	}
	lines := strings.SplitAfter(upstreamPort.ReplaceAllString(string(text), "0"), "\n")
	for i, line := range lines {
		for _, s := range subst {
			line = strings.Replace(line, s.from, s.to, 1)
		}
		lines[i] = retiredIOURingField(line)
	}
	out := strings.Join(lines, "")
	if strings.Contains(out, "{{") {
		return nil, fmt.Errorf("envoy bootstrap %s: a placeholder is left after templating", v.Name)
	}
	return []byte(out), nil
}
