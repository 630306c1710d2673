package watch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The OS layer: the only file of the package that calls unix.*.

// dirMask is what a watched directory reports: every way an entry can be
// created, written, replaced, retargeted or removed, and the directory itself
// going away. IN_OPEN, IN_ACCESS and IN_CLOSE_NOWRITE are left out, so the
// watcher's own reads wake nothing. IN_EXCL_UNLINK: an unlinked file still
// open somewhere reports nothing more.
const dirMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_CLOSE_WRITE | unix.IN_MODIFY | unix.IN_ATTRIB |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR | unix.IN_EXCL_UNLINK

// dirEvent is one inotify event, reduced to what the watcher decides on.
type dirEvent struct {
	wd       int32
	name     string // the entry that changed; "" when the directory itself did
	overflow bool   // the kernel's queue overflowed: events were lost
	ignored  bool   // the watch is gone (directory removed, unmounted or unwatched)
}

// inotify is one inotify instance. Its fd is non-blocking and handed to Go's
// poller through an *os.File, so closing the file wakes a blocked read.
type inotify struct {
	fd   int // for add and remove; never file.Fd(), which would make it blocking
	file *os.File
}

func openInotify() (*inotify, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if errors.Is(err, unix.EMFILE) {
		return nil, fmt.Errorf("inotify_init1: %w (raise fs.inotify.max_user_instances)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	return &inotify{fd: fd, file: os.NewFile(uintptr(fd), "inotify")}, nil
}

// add watches dir, or returns the watch it already has: the kernel gives one
// watch descriptor per directory inode.
func (in *inotify) add(dir string) (int32, error) {
	wd, err := unix.InotifyAddWatch(in.fd, dir, dirMask)
	if errors.Is(err, unix.ENOSPC) {
		return 0, fmt.Errorf("inotify_add_watch %s: %w (raise fs.inotify.max_user_watches)", dir, err)
	}
	if err != nil {
		return 0, fmt.Errorf("inotify_add_watch %s: %w", dir, err)
	}
	return int32(wd), nil
}

// remove drops a watch. Its error is not worth reporting: the watch may be
// gone already, with its directory.
func (in *inotify) remove(wd int32) { _, _ = unix.InotifyRmWatch(in.fd, uint32(wd)) }

// read blocks until events come, and returns them. After close it returns an
// error matching os.ErrClosed.
func (in *inotify) read(buf []byte) ([]dirEvent, error) {
	n, err := in.file.Read(buf)
	if err != nil {
		return nil, err
	}
	return parse(buf[:n]), nil
}

func (in *inotify) close() error { return in.file.Close() }

// parse decodes the struct inotify_event records the kernel wrote to buf,
// each followed by its NUL-padded name. A truncated record ends the parse
// (the kernel never writes one).
func parse(buf []byte) []dirEvent {
	var events []dirEvent
	for len(buf) >= unix.SizeofInotifyEvent {
		wd := int32(binary.NativeEndian.Uint32(buf[0:4]))
		mask := binary.NativeEndian.Uint32(buf[4:8])
		size := unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(buf[12:16]))
		if size > len(buf) {
			break
		}
		name := bytes.TrimRight(buf[unix.SizeofInotifyEvent:size], "\x00")
		events = append(events, dirEvent{
			wd:       wd,
			name:     string(name),
			overflow: mask&unix.IN_Q_OVERFLOW != 0,
			ignored:  mask&unix.IN_IGNORED != 0,
		})
		buf = buf[size:]
	}
	return events
}
