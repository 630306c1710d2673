package watch

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	var buf []byte
	record := func(wd int32, mask uint32, name string) {
		padded := 0
		if name != "" {
			padded = (len(name) + 1 + 15) / 16 * 16
		}
		head := make([]byte, unix.SizeofInotifyEvent)
		binary.NativeEndian.PutUint32(head[0:], uint32(wd))
		binary.NativeEndian.PutUint32(head[4:], mask)
		binary.NativeEndian.PutUint32(head[12:], uint32(padded))
		buf = append(buf, head...)
		buf = append(buf, name...)
		buf = append(buf, make([]byte, padded-len(name))...)
	}
	record(1, unix.IN_MOVED_TO, "envoy.yaml")
	record(2, unix.IN_DELETE_SELF, "")
	record(-1, unix.IN_Q_OVERFLOW, "")
	record(2, unix.IN_IGNORED, "")

	require.Equal(t, []dirEvent{
		{wd: 1, name: "envoy.yaml"},
		{wd: 2},
		{wd: -1, overflow: true},
		{wd: 2, ignored: true},
	}, parse(buf))
	require.Equal(t, []dirEvent{{wd: 1, name: "envoy.yaml"}}, parse(buf[:2*unix.SizeofInotifyEvent+10]), "a truncated record ends the parse")
}

func TestOverflowRehashesEveryFile(t *testing.T) {
	root := t.TempDir()
	envoy := filepath.Join(root, "envoy.yaml")
	write(t, envoy, "v1")
	// A hard link in a directory nobody watches: writes through it wake no
	// watch (inotify tells the directory of the name that was opened).
	elsewhere := filepath.Join(t.TempDir(), "envoy.yaml")
	require.NoError(t, os.Link(envoy, elsewhere))
	s := start(t, debounce, root, envoy)

	write(t, elsewhere, "v2")
	s.w.batches <- batch{events: []dirEvent{{wd: -1, overflow: true}}}

	require.Equal(t, Event{Path: envoy}, s.next())
	require.Empty(t, s.settle())
}
