package fakeenvoytest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Load is clients hammering a listener: each request on a fresh connection
// (so every hot restart's accept path is exercised) with a unique
// x-request-id, recording every failure, every id answered, and the epochs
// that answered.
type Load struct {
	url  string
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	next     int
	ok       []string // request ids answered 200
	failures []string
	refused  []string    // failures to connect
	epochs   map[int]int // responses per epoch
}

// StartLoad starts workers clients on addr; they run until Finish, which
// the test's cleanup also calls.
func StartLoad(t testing.TB, addr string, workers int) *Load {
	l := &Load{url: "http://" + addr + "/", stop: make(chan struct{}), epochs: map[int]int{}}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.mu.Lock()
				l.next++
				id := fmt.Sprintf("req-%d", l.next)
				l.mu.Unlock()
				l.get(client, id)
			}
		}()
	}
	t.Cleanup(l.Finish)
	return l
}

func (l *Load) get(client *http.Client, id string) {
	req, _ := http.NewRequest(http.MethodGet, l.url, nil)
	req.Header.Set("x-request-id", id)
	resp, err := client.Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failures = append(l.failures, id+": "+err.Error())
		if op := (*net.OpError)(nil); errors.As(err, &op) && op.Op == "dial" {
			l.refused = append(l.refused, id+": "+err.Error())
		}
		return
	}
	l.ok = append(l.ok, id)
	epoch, _ := strconv.Atoi(resp.Header.Get("x-fakeenvoy-epoch"))
	l.epochs[epoch]++
}

// Finish stops the clients and waits for their requests in flight.
func (l *Load) Finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// Served reports how many responses epoch n gave so far.
func (l *Load) Served(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epochs[n]
}

// Answered returns the ids of the requests answered 200, sorted.
func (l *Load) Answered() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := append([]string(nil), l.ok...)
	sort.Strings(ids)
	return ids
}

// Refused returns the failed requests that got no connection (refused,
// reset or timed out while connecting), with their errors.
func (l *Load) Refused() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.refused...)
}

// Failed returns every failed request with its error.
func (l *Load) Failed() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.failures...)
}
