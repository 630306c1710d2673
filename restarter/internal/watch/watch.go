// Package watch tells when the content of watched files changes: the
// restarter's --watch. It watches, with inotify, each file's directory and
// the directory of every symlink on the way to it, so in-place writes,
// editors' rename-over saves and Kubernetes ConfigMap symlink swaps are all
// seen. After a quiet period (the debounce) it hashes every file, and
// reports those whose content differs from what it last reported, or that
// are gone. A touch or an identical rewrite reports nothing.
package watch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Event is the new state of one watched path. Exactly one holds: Err is
// set (the file cannot be read or watched), Gone is set (the path leads to
// no file), or neither: the content changed.
type Event struct {
	Path string // as given to New, made absolute
	Gone bool
	Err  error
}

// Watcher watches files and sends an Event on Events for each one whose
// state changed. It never blocks on a consumer that does not read: events
// wait per path, and a newer state replaces an unread one.
type Watcher struct {
	files     []*file
	debounce  time.Duration
	in        *inotify
	watches   map[int32]map[string]bool // watch descriptor: names looked up in its directory
	timer     *time.Timer               // the debounce: armed by events, fires an evaluation
	events    chan Event
	batches   chan batch // from the reader to the loop
	evaluated func()     // tests' hook, called after each evaluation

	done       chan struct{} // closed by Close
	loopDone   chan struct{}
	readerDone chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// batch is what one read of the inotify fd gave: events, or the error that
// stopped the reader.
type batch struct {
	events []dirEvent
	err    error
}

// New starts watching paths, each made absolute; a path given twice is
// watched once. Every path must lead to a readable regular file now: the
// error names the first that does not. The
// debounce is how long the watched directories must be quiet before the
// files are hashed; every event starts it again.
func New(paths []string, debounce time.Duration) (*Watcher, error) {
	return newWatcher(paths, debounce, nil)
}

func newWatcher(paths []string, debounce time.Duration, evaluated func()) (*Watcher, error) {
	if len(paths) == 0 {
		return nil, errors.New("no path")
	}
	if debounce <= 0 {
		return nil, fmt.Errorf("debounce %v is not positive", debounce)
	}
	w := &Watcher{
		debounce:   debounce,
		watches:    map[int32]map[string]bool{},
		timer:      time.NewTimer(debounce),
		events:     make(chan Event),
		batches:    make(chan batch),
		evaluated:  evaluated,
		done:       make(chan struct{}),
		loopDone:   make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	w.timer.Stop()
	for _, path := range paths {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", path, err)
		}
		if !slices.ContainsFunc(w.files, func(f *file) bool { return f.path == abs }) {
			w.files = append(w.files, &file{path: abs})
		}
	}
	in, err := openInotify()
	if err != nil {
		return nil, err
	}
	w.in = in
	w.evaluate()
	for _, f := range w.files {
		if f.err != nil {
			in.close()
			return nil, f.err
		}
		f.tell(Event{Path: f.path})
	}
	go w.read()
	go w.loop()
	return w, nil
}

// Events returns the channel events come on. It is closed by Close. Events
// of one evaluation come in the order of the paths given to New.
func (w *Watcher) Events() <-chan Event { return w.events }

// Close stops watching: when it returns, the watcher's goroutines have
// exited, the inotify fd is closed and Events is closed. It may be called
// more than once.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		close(w.done)
		<-w.loopDone // the loop is the only one adding watches to the fd
		w.closeErr = w.in.close()
		<-w.readerDone
	})
	return w.closeErr
}

// loop owns the watcher's state: it takes the reader's events, runs the
// debounce, evaluates, and hands the consumer what is due.
func (w *Watcher) loop() {
	defer close(w.loopDone)
	defer close(w.events)
	batches := w.batches
	for {
		next, due := w.due()
		var out chan<- Event
		if due {
			out = w.events
		}
		select {
		case <-w.done:
			return
		case out <- next:
			w.tell(next)
		case b := <-batches:
			if b.err != nil {
				w.fail(b.err)
				batches = nil
			} else if w.stirred(b.events) {
				w.timer.Reset(w.debounce)
			}
		case <-w.timer.C:
			w.evaluate()
		}
	}
}

// read passes the inotify fd's events to the loop until Close closes it.
func (w *Watcher) read() {
	defer close(w.readerDone)
	buf := make([]byte, 64<<10)
	for {
		events, err := w.in.read(buf)
		if errors.Is(err, os.ErrClosed) {
			return
		}
		select {
		case w.batches <- batch{events, err}:
		case <-w.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// stirred reports whether events concern a watched file: an entry looked up
// on the way to one, a watched directory itself, or events lost.
func (w *Watcher) stirred(events []dirEvent) bool {
	stirred := false
	for _, e := range events {
		names, known := w.watches[e.wd]
		switch {
		case e.overflow:
			stirred = true
		case !known:
		case e.ignored:
			delete(w.watches, e.wd)
			stirred = true
		case e.name == "" || names[e.name]:
			stirred = true
		}
	}
	return stirred
}

// evaluate resolves every file's chain of links, watches the directories
// they live in (and only those), then hashes every file. If a chain moved
// meanwhile, another evaluation follows after the debounce.
func (w *Watcher) evaluate() {
	for _, f := range w.files {
		f.look()
	}
	watchErr, again := w.arm()
	for _, f := range w.files {
		if f.read(watchErr) {
			again = true
		}
	}
	if again {
		w.timer.Reset(w.debounce)
	}
	if w.evaluated != nil {
		w.evaluated()
	}
}

// arm watches the directories of every file's links and drops the watches
// no link needs any more. It returns the directories it failed to watch,
// and whether one vanished before it could (then the chains are stale).
func (w *Watcher) arm() (failed map[string]error, vanished bool) {
	want := map[string]map[string]bool{}
	for _, f := range w.files {
		for _, l := range f.links {
			if want[l.dir] == nil {
				want[l.dir] = map[string]bool{}
			}
			want[l.dir][l.name] = true
		}
	}
	failed = map[string]error{}
	watches := map[int32]map[string]bool{}
	for dir, names := range want {
		wd, err := w.in.add(dir)
		switch {
		case isGone(err):
			vanished = true
		case err != nil:
			failed[dir] = err
		case watches[wd] == nil:
			watches[wd] = names
		default: // the same directory by another path (a bind mount)
			for name := range names {
				watches[wd][name] = true
			}
		}
	}
	for wd := range w.watches {
		if watches[wd] == nil {
			w.in.remove(wd)
		}
	}
	w.watches = watches
	return failed, vanished
}

// fail records that the reader stopped: nothing is watched any more, and
// every path says so once.
func (w *Watcher) fail(err error) {
	err = fmt.Errorf("watching stopped: read inotify: %w", err)
	for _, f := range w.files {
		f.err, f.gone = err, false
	}
	w.timer.Stop()
}

// due returns the first event the consumer has not had.
func (w *Watcher) due() (Event, bool) {
	for _, f := range w.files {
		if e, ok := f.due(); ok {
			return e, true
		}
	}
	return Event{}, false
}

func (w *Watcher) tell(e Event) {
	for _, f := range w.files {
		if f.path == e.Path {
			f.tell(e)
		}
	}
}
