package watch

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"syscall"
)

// A file is one watched path: what the watcher saw of it last, and what it
// last told the consumer. An event is due when the two differ, so however
// many evaluations pass before the consumer reads, it gets one event, the
// latest state.
type file struct {
	path  string
	links []link // armed: the directories they live in are watched

	sum  [sha256.Size]byte // the content last read
	err  error             // why it cannot be read or watched now
	gone bool              // err says the path leads nowhere (ENOENT, ENOTDIR)

	toldSum  [sha256.Size]byte
	toldGone bool
	toldErr  string
}

// look resolves the path's chain of links, for the watcher to arm.
func (f *file) look() { f.links = chain(f.path) }

// read hashes the file and records what it finds; watchErr, from arming,
// overrides. It reports whether the chain of links moved since look: then
// the watches may be on the wrong directories, and another evaluation must
// follow.
func (f *file) read(watchErr map[string]error) (moved bool) {
	sum, err := hash(f.path)
	for _, l := range f.links {
		if e := watchErr[l.dir]; e != nil {
			err = fmt.Errorf("%s: %w", f.path, e)
		}
	}
	f.observe(sum, err)
	return !slices.Equal(f.links, chain(f.path))
}

func (f *file) observe(sum [sha256.Size]byte, err error) {
	f.err, f.gone = err, isGone(err)
	if err == nil {
		f.sum = sum
		if sum == f.toldSum {
			// Back as the consumer knows it: a later loss is news again.
			f.toldGone, f.toldErr = false, ""
		}
	}
}

// isGone reports whether err says a path leads nowhere: an entry on the way
// is missing, or is not a directory.
func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// due returns the event that tells the file's state, if the consumer does
// not know it yet.
func (f *file) due() (Event, bool) {
	switch {
	case f.gone:
		return Event{Path: f.path, Gone: true}, !f.toldGone
	case f.err != nil:
		return Event{Path: f.path, Err: f.err}, f.err.Error() != f.toldErr
	default:
		return Event{Path: f.path}, f.sum != f.toldSum
	}
}

// tell records that the consumer received e.
func (f *file) tell(e Event) {
	switch {
	case e.Err != nil:
		f.toldErr = e.Err.Error()
	case e.Gone:
		f.toldGone = true
	default:
		f.toldSum, f.toldGone, f.toldErr = f.sum, false, ""
	}
}

// hash returns the sha256 of the regular file path leads to. O_NONBLOCK:
// opening a FIFO put in its place must not hang the watcher.
func hash(path string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	file, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return sum, err
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return sum, err
	}
	if !info.Mode().IsRegular() {
		return sum, fmt.Errorf("%s: not a regular file (%s)", path, info.Mode().Type())
	}
	h := sha256.New()
	if _, err := io.Copy(h, file); err != nil {
		return sum, fmt.Errorf("read %s: %w", path, err)
	}
	h.Sum(sum[:0])
	return sum, nil
}
