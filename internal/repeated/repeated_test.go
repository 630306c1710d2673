package repeated

import (
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStringsCollectsEveryOccurrenceInOrder(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var args Strings
	fs.Var(&args, "arg", "repeatable")
	require.NoError(t, fs.Parse([]string{"--arg", "-c", "--arg=exit 0", "rest"}))
	require.Equal(t, Strings{"-c", "exit 0"}, args)
	require.Equal(t, "-c, exit 0", args.String())
	require.Equal(t, []string{"rest"}, fs.Args())
}
