package osproc

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/envoy-restarter/restarter/restarter/internal/config"
)

// BaseID is Envoy's --base-id: a uint32, parsed once from the file Envoy
// wrote it to (--base-id-path), decimal without a newline.
type BaseID uint32

// String is the decimal id, as Envoy writes it and takes it.
func (id BaseID) String() string { return strconv.FormatUint(uint64(id), 10) }

// ParseBaseID parses a base id as Envoy writes it (surrounding space
// allowed).
func ParseBaseID(s string) (BaseID, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a base id", strings.TrimSpace(s))
	}
	return BaseID(n), nil
}

// ReadBaseID reads the base id Envoy wrote to path.
func ReadBaseID(path string) (BaseID, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	id, err := ParseBaseID(string(b))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// ClearBaseID removes what an earlier run left at --base-id-path, so that
// epoch 0's id is never confused with it: nothing, an empty file or one
// holding a base id. Anything else is not the restarter's to delete, and is
// a usage error. A stale id that cannot be removed (a read-only file system)
// is an error too: later epochs would be given it as ENVOY_BASE_ID.
func ClearBaseID(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case os.IsNotExist(err):
		return nil
	case err != nil:
		return fmt.Errorf("base id file %s: %v", path, config.UnwrapPathError(err))
	case fi.IsDir():
		return config.Usagef("flag -base-id-path: %s is a directory; give the path of a file for Envoy's --base-id-path", path)
	case !fi.Mode().IsRegular():
		return config.Usagef("flag -base-id-path: %s is not a regular file; refusing to delete it", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("base id file %s: %v", path, config.UnwrapPathError(err))
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		if _, err := ParseBaseID(s); err != nil {
			return config.Usagef("flag -base-id-path: %s holds something other than a base id (%d bytes starting %q); refusing to delete it", path, len(b), firstLine(string(b), 40))
		}
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("base id file %s: cannot remove the stale base id left by an earlier run (%v); later epochs would be given it: remove it or choose another --base-id-path", path, config.UnwrapPathError(err))
	}
	return nil
}
