package control

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeServer answers each connection on a socket at path with the next of
// answers, raw, after reading its request line; it records the requests.
func fakeServer(t *testing.T, answers ...string) (path string, requests <-chan string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "fake.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, len(answers))
	go func() {
		for _, answer := range answers {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			got <- line
			c.Write([]byte(answer))
			c.Close()
		}
	}()
	return path, got
}

func TestAskSendsOneRequestLineAndReadsTheReply(t *testing.T) {
	path, requests := fakeServer(t, `{"ok":true,"epoch":4}`+"\n")
	reply, err := Ask(path, "reload", 10*time.Second)
	require.NoError(t, err)
	epoch := 4
	require.Equal(t, Reply{OK: true, Epoch: &epoch}, reply)
	line := <-requests
	var req Request
	require.NoError(t, json.Unmarshal([]byte(line), &req))
	require.Equal(t, Request{Command: "reload"}, req)
	require.Equal(t, byte('\n'), line[len(line)-1], "one line")
}

func TestAskRejectsNonsense(t *testing.T) {
	path, _ := fakeServer(t, "not json\n", "")
	_, err := Ask(path, "status", 10*time.Second)
	require.ErrorContains(t, err, "malformed reply")
	_, err = Ask(path, "status", 10*time.Second)
	require.ErrorContains(t, err, "no reply")
}

func TestAskNamesTheSocketItCannotReach(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.sock")
	_, err := Ask(path, "status", 10*time.Second)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, path)
}

func TestAskGivesUpAfterItsTimeout(t *testing.T) {
	// Given a restarter that takes a reload but does not answer yet,
	s, path, _ := listen(t)
	go func() {
		select {
		case <-s.Calls():
		case <-s.Done():
		}
	}()

	// when the client asks with a short timeout, it gets a deadline error
	// (what `restarter reload` tells from an unreachable restarter).
	start := time.Now()
	_, err := Ask(path, "reload", 50*time.Millisecond)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.Less(t, time.Since(start), 10*time.Second)
}
