package supervisor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/machine"
	"github.com/envoy-restarter/restarter/restarter/internal/osproc"

	"github.com/stretchr/testify/require"
)

func TestProbeURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ready":
			w.Write([]byte("LIVE\n"))
		case "/server_info/epoch1":
			w.Write([]byte(`{"state":"LIVE","command_line_options":{"restart_epoch":1}}`))
		case "/server_info/epoch1-quoted":
			w.Write([]byte(`{"state":"LIVE","command_line_options":{"restart_epoch":"1"}}`))
		case "/server_info/initializing":
			w.Write([]byte(`{"state":"INITIALIZING","command_line_options":{"restart_epoch":1}}`))
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	tests := []struct {
		path string
		want bool
	}{
		{"/ready", true},
		{"/server_info/epoch1", true},
		{"/server_info/epoch1-quoted", true},
		{"/server_info/initializing", false},
		{"/unavailable", false},
	}
	for _, tt := range tests {
		cfg := testConfig()
		cfg.ReadyURL = srv.URL + tt.path
		r, _ := fakeRunner(t, cfg, newFakeOS())
		err := r.probeURL(context.Background(), 1)
		require.Equal(t, tt.want, err == nil, "%s: %v", tt.path, err)
	}
	// Epoch 2 is not ready while epoch 1 still answers /server_info.
	cfg := testConfig()
	cfg.ReadyURL = srv.URL + "/server_info/epoch1"
	r, _ := fakeRunner(t, cfg, newFakeOS())
	require.ErrorContains(t, r.probeURL(context.Background(), 2), "answered by restart_epoch 1, not 2")
}

func TestWatchReadyByURL(t *testing.T) {
	ready := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-ready:
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	cfg := testConfig()
	cfg.ReadyURL = srv.URL + "/ready"
	r, _ := fakeRunner(t, cfg, newFakeOS())
	r.startWatch(0, 100)
	time.AfterFunc(150*time.Millisecond, func() { close(ready) }) // a few probes fail first
	// the failing probes' reason is reported (once: it does not change), then Ready.
	require.Equal(t, []machine.Event{machine.NotReady{Epoch: 0, Reason: "GET " + cfg.ReadyURL + ": status 503"}}, nextWithin(t, r))
	require.Equal(t, []machine.Event{machine.Ready{Epoch: 0}}, nextWithin(t, r))

	// A watch whose context ends gives up silently.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg.ReadyURL = "http://127.0.0.1:1/ready"
	r, _ = fakeRunner(t, cfg, newFakeOS())
	var reported []machine.Event
	r.watchReady(ctx, 1, 101, func(ev machine.Event) { reported = append(reported, ev) })
	require.Empty(t, reported)
}

func TestProbeCmdEnvironment(t *testing.T) {
	f := newFakeOS()
	var env []string
	f.runHelper = func(ctx context.Context, cmd *exec.Cmd) (string, error) { env = cmd.Env; return "", nil }
	cfg := testConfig()
	cfg.ReadyCmd = []string{"/bin/ready", "--fast"}
	r, _ := fakeRunner(t, cfg, f)
	require.NoError(t, r.probeCmd(context.Background(), 3, 103))
	require.Equal(t, "PATH=/bin RESTART_EPOCH=3 "+osproc.InstanceEnv+"="+instanceID(cfg)+" ENVOY_PID=103", strings.Join(env, " "))
}
