package config

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// This file turns COMMAND and the helpers' commands into executables, and
// the file flags into absolute paths.

// resolve finds COMMAND and the helpers' commands, and makes the file flags
// absolute against the children's working directory.
func resolve(cfg *Config, r raw) error {
	cfg.Dir = os.Getenv("BUILD_WORKING_DIRECTORY")
	path, err := resolveCommand(cfg.Command, cfg.Dir)
	if err != nil {
		return err
	}
	cfg.Path = path
	if strings.Contains(cfg.Command, "/") {
		cfg.Path = cfg.Command
	}
	if len(r.check) > 0 {
		if cfg.Check, err = resolveHelper("check", r.check[0], r.checkArgs, cfg.Dir); err != nil {
			return err
		}
	}
	if len(r.readyCmd) > 0 {
		if cfg.ReadyCmd, err = resolveHelper("ready-cmd", r.readyCmd[0], r.readyCmdArgs, cfg.Dir); err != nil {
			return err
		}
	}
	cfg.Watch = r.watch
	for i := range cfg.Watch {
		if !filepath.IsAbs(cfg.Watch[i]) && cfg.Dir != "" {
			cfg.Watch[i] = filepath.Join(cfg.Dir, cfg.Watch[i])
		}
	}
	for _, p := range []*string{&cfg.BaseIDPath, &cfg.ControlSocket, &cfg.PIDFile, &cfg.MetricsFile} {
		if *p != "" && !filepath.IsAbs(*p) && cfg.Dir != "" {
			*p = filepath.Join(cfg.Dir, *p)
		}
	}
	if cfg.ControlSocket != "" {
		if err := CheckSocketPath(cfg.ControlSocket); err != nil {
			return Usagef("flag -control-socket: %v", err)
		}
	}
	return nil
}

// resolveHelper checks the command of --check or --ready-cmd as COMMAND is
// checked, and returns its argv with the command as an absolute path.
func resolveHelper(flagName, command string, args []string, dir string) ([]string, error) {
	path, err := resolveCommand(command, dir)
	if err != nil {
		var usage *UsageError
		if errors.As(err, &usage) {
			return nil, Usagef("flag -%s: %s", flagName, strings.TrimPrefix(usage.msg, "COMMAND "))
		}
		return nil, err
	}
	return append([]string{path}, args...), nil
}

// resolveCommand turns COMMAND into an absolute path of an executable
// regular file, relative to dir (or the current directory when dir is "").
func resolveCommand(command, dir string) (string, error) {
	if command == "" { // it would resolve to the directory itself
		return "", Usagef(`COMMAND "": empty: give the start script to run`)
	}
	base := dir
	if base == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", Usagef("COMMAND %q: cannot read the working directory: %v", command, err)
		}
		base = wd
	}
	path := command
	if !filepath.IsAbs(path) {
		path = filepath.Join(base, path)
	}
	if !strings.Contains(command, "/") {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if found, err := exec.LookPath(command); err == nil {
				path = found
			}
		}
	}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", Usagef("COMMAND %q: no such file", command)
	case err != nil:
		return "", Usagef("COMMAND %q: %v", command, UnwrapPathError(err))
	case info.IsDir():
		return "", Usagef("COMMAND %q: is a directory", command)
	case !info.Mode().IsRegular():
		return "", Usagef("COMMAND %q: not a regular file", command)
	}
	if _, err := exec.LookPath(path); err != nil { // a path with a slash: checked, not searched
		var execErr *exec.Error
		if errors.As(err, &execErr) {
			err = execErr.Err
		}
		return "", Usagef("COMMAND %q: not executable (%v)", command, err)
	}
	return filepath.Abs(path)
}
