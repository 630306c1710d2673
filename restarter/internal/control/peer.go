package control

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// The two questions the server asks the kernel about a connection.

// peerUID returns the uid of the process at the other end of conn
// (SO_PEERCRED).
func peerUID(conn *net.UnixConn) (int, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if credErr != nil {
		return -1, credErr
	}
	return int(cred.Uid), nil
}

// fdOf returns the file descriptor number of conn and the soft
// RLIMIT_NOFILE limit; ok is false if either is unknown.
func fdOf(conn syscall.Conn) (fd, limit int, ok bool) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, 0, false
	}
	if raw.Control(func(f uintptr) { fd = int(f) }) != nil {
		return 0, 0, false
	}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) != nil || rl.Cur > 1<<30 {
		return 0, 0, false
	}
	return fd, int(rl.Cur), true
}
