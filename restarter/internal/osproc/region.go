package osproc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/envoy-restarter/restarter/internal/envoyshm"
	"github.com/envoy-restarter/restarter/internal/procfs"
	"golang.org/x/sys/unix"
)

// This file is Envoy's shared memory region as the init gate sees it:
// found in an epoch's /proc/PID/maps by device and inode, and mapped only
// when the file at its path is that very file with Envoy's layout.

// mappedRegion is Envoy's region, mapped read-write (to heal a wedged flag).
type mappedRegion struct {
	ref regionRef
	envoyshm.Region
}

// regionRef is a region as an epoch's /proc/PID/maps line shows it: the
// path, and the identity of the file mapped there (device and inode),
// which the file now at that path may no longer have.
type regionRef struct {
	path         string
	major, minor uint32
	ino          uint64
}

// is reports whether st is the file r names.
func (r regionRef) is(st *unix.Stat_t) bool {
	return unix.Major(st.Dev) == r.major && unix.Minor(st.Dev) == r.minor && st.Ino == r.ino
}

// errReplaced: the file at a region's path is not the one the epoch maps
// (replaced after the maps were read, or a stale region of the same name).
var errReplaced = errors.New("not the file the epoch maps")

// errUnwritten: the region's header (size_, version_) is still zero: its
// epoch 0 has mapped it but not yet written it (Envoy writes it right
// after the mmap), so its layout cannot be told yet.
var errUnwritten = errors.New("its header is not written yet")

// mapRegion maps the region ref names after checking that the file at its
// path is the one ref names (errReplaced otherwise) and that it has
// Envoy's layout: its file size, size_ and version_ must be this
// platform's (errUnwritten while size_ and version_ are still zero).
func mapRegion(ref regionRef) (*mappedRegion, error) {
	path := ref.path
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !ref.is(&st) {
		return nil, fmt.Errorf("%s (device %d:%d, inode %d): %w", path, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino, errReplaced)
	}
	if st.Size != envoyshm.Size {
		return nil, fmt.Errorf("%s is %d bytes, not Envoy's %d-byte hot restart version %s layout", path, st.Size, envoyshm.Size, envoyshm.VersionString(envoyshm.Version))
	}
	mem, err := unix.Mmap(fd, 0, envoyshm.Size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	if wordAt(mem, envoyshm.OffsetSize) == 0 && wordAt(mem, envoyshm.OffsetVersion) == 0 {
		unix.Munmap(mem)
		return nil, fmt.Errorf("%s: %w", path, errUnwritten)
	}
	region, err := envoyshm.NewRegion(mem)
	if err == nil {
		err = region.Check(envoyshm.Version)
	}
	if err != nil {
		err = fmt.Errorf("%s: size_ %d, version_ %d: not Envoy's hot restart version %s layout", path,
			wordAt(mem, envoyshm.OffsetSize), wordAt(mem, envoyshm.OffsetVersion), envoyshm.VersionString(envoyshm.Version))
		unix.Munmap(mem)
		return nil, err
	}
	// The mapping lives as long as the restarter: nothing unmaps it.
	return &mappedRegion{ref: ref, Region: region}, nil
}

func wordAt(mem []byte, off int) uint64 {
	if len(mem) < off+8 {
		return 0
	}
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(mem[off+i])
	}
	return v
}

// regionPrefix starts the path of every Envoy region in /proc/PID/maps.
const regionPrefix = "/dev/shm/envoy_shared_memory_"

// regionInMaps returns the Envoy region pid (or a child or grandchild of
// it: a start script that does not exec) has mapped, if any, and whether
// pid is still running (a zombie has no mappings).
func regionInMaps(pid int) (ref regionRef, alive bool) {
	// First: forked (vfork: our own address space, our mapping of the
	// region included) and not yet exec'd, nothing of the epoch is there
	// yet. Checked before the maps are read, so they are the new image's.
	if runsRestarterExe(pid) {
		return regionRef{}, true
	}
	b, err := procfs.ReadMaps(pid)
	if err != nil || len(b) == 0 {
		// Empty maps: a zombie, or a process in the middle of an exec (the
		// start script exec'ing Envoy); only the former is gone.
		return regionRef{}, procfs.Running(pid)
	}
	if r, ok := regionIn(b); ok {
		return r, true
	}
	for _, child := range procfs.Children(pid) {
		for _, p := range append([]int{child}, procfs.Children(child)...) {
			if b, err := procfs.ReadMaps(p); err == nil {
				if r, ok := regionIn(b); ok {
					return r, true
				}
			}
		}
	}
	return regionRef{}, true
}

// selfExe is the restarter's own executable, as /proc shows it.
var selfExe, _ = procfs.Exe(os.Getpid())

// runsRestarterExe reports whether pid runs the restarter's executable: a
// child between fork and exec, or a restarter (this one or another run).
func runsRestarterExe(pid int) bool {
	exe, err := procfs.Exe(pid)
	return err == nil && exe == selfExe
}

// regionIn returns the first live Envoy region in a maps file's content:
// "start-end perms offset major:minor inode path", the device in hex.
func regionIn(maps []byte) (regionRef, bool) {
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, regionPrefix) || strings.HasSuffix(line, " (deleted)") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 6 || !strings.HasPrefix(f[5], regionPrefix) {
			continue
		}
		major, minor, ok := strings.Cut(f[3], ":")
		maj, err1 := strconv.ParseUint(major, 16, 32)
		mnr, err2 := strconv.ParseUint(minor, 16, 32)
		ino, err3 := strconv.ParseUint(f[4], 10, 64)
		if !ok || err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		return regionRef{path: f[5], major: uint32(maj), minor: uint32(mnr), ino: ino}, true
	}
	return regionRef{}, false
}
