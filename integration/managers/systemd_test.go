//go:build managers

package managers

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSystemdAnalyzeVerify checks every example unit with systemd-analyze
// verify, which loads it as systemd would (keys, values, that ExecStart's
// binary exists and is executable). systemd below 253 does not know
// Type=notify-reload: it falls back to Type=simple and ignores
// ReloadSignal=, exactly the two lines the unit's version note warns of.
func TestSystemdAnalyzeVerify(t *testing.T) {
	requirePackage(t, "systemd", "systemd-analyze")
	t.Parallel()
	in := newInstall(t)
	version := systemdVersion(t)
	for _, unit := range []string{"envoy.service", "envoy-notify-reload.service"} {
		t.Run(unit, func(t *testing.T) {
			path := in.file(unit, "units/"+unit)
			out, err := runErr("systemd-analyze", "verify", path)
			require.NoError(t, err, "%s", out)
			var want []string
			if unit == "envoy-notify-reload.service" && version < 253 {
				want = []string{
					path + ":" + lineOf(t, path, "Type=notify-reload") + ": Failed to parse service type, ignoring: notify-reload",
					path + ":" + lineOf(t, path, "ReloadSignal=") + ": Unknown key 'ReloadSignal' in section [Service], ignoring.",
				}
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if line != "" {
					got = append(got, line)
				}
			}
			require.Equal(t, want, got, "systemd %d", version)
		})
	}
}

// systemdVersion is systemd's version number, from systemd-analyze --version.
func systemdVersion(t *testing.T) int {
	m := regexp.MustCompile(`^systemd (\d+)`).FindStringSubmatch(run(t, "systemd-analyze", "--version"))
	require.NotNil(t, m, "systemd-analyze --version")
	v, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return v
}

// lineOf is the number of the first line of file that starts with prefix.
func lineOf(t *testing.T, file, prefix string) string {
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	for i, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			return strconv.Itoa(i + 1)
		}
	}
	t.Fatalf("%s: no line starting with %s", file, prefix)
	return ""
}
