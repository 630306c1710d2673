package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/envoy-restarter/restarter/internal/procfs"
)

// LatencyResult is measurements 1 and 3 for one restarter: hot restart
// latency over repeated restarts and the footprint around them.
type LatencyResult struct {
	ToExecMs      []float64 `json:"sighup_to_exec_ms"`
	ToLiveMs      []float64 `json:"sighup_to_live_ms"`
	ToExec        Summary   `json:"sighup_to_exec"`
	ToLive        Summary   `json:"sighup_to_live"`
	IdleSeconds   float64   `json:"idle_seconds"`
	IdleRSSKiB    int64     `json:"idle_rss_kib"`
	IdleHWMKiB    int64     `json:"idle_peak_rss_kib"`
	IdleCPUMs     float64   `json:"idle_cpu_ms"`
	Restarts      int       `json:"footprint_restarts"`
	RestartHWMKiB int64     `json:"restarts_peak_rss_kib"`
	RestartCPUMs  float64   `json:"restarts_cpu_ms"`
	// CPUPerRestartMs is RestartCPUMs over Restarts: the restarter's own
	// CPU time (its threads' time on a CPU, schedstat) per hot restart,
	// the quiet time between restarts included.
	CPUPerRestartMs float64 `json:"cpu_per_restart_ms"`
	Error           string  `json:"error,omitempty"`
}

// runLatency starts every restarter, lets them idle side by side, then hot
// restarts them b.restarts times each, taking turns so that whatever else
// the host does weighs on all of them alike, and times SIGHUP → the new
// epoch executing and → the new epoch LIVE.
func (b *bench) runLatency(rs []Restarter) []LatencyResult {
	results := make([]LatencyResult, len(rs))
	instances := make([]*instance, len(rs))
	for i, r := range rs {
		in, err := b.launch(r)
		if err != nil {
			results[i].Error = err.Error()
			continue
		}
		instances[i] = in
		defer in.close()
	}
	before := make([]time.Duration, len(rs))
	for i, in := range instances {
		if in != nil {
			before[i], _ = procfs.CPU(in.pid)
		}
	}
	time.Sleep(b.idle)
	for i, in := range instances {
		if in == nil {
			continue
		}
		after, _ := procfs.CPU(in.pid)
		res := &results[i]
		res.IdleSeconds = b.idle.Seconds()
		res.IdleCPUMs = ms(after - before[i])
		res.IdleRSSKiB, res.IdleHWMKiB, _ = procfs.Memory(in.pid)
		before[i] = after
	}
	for epoch := 1; epoch <= b.restarts; epoch++ {
		for i, in := range instances {
			if in == nil {
				continue
			}
			if err := b.restartOnce(in, epoch, &results[i], before[i]); err != nil {
				results[i].Error = err.Error()
				in.close()
				instances[i] = nil
			}
		}
	}
	for i := range results {
		results[i].ToExec = Summarize(results[i].ToExecMs)
		results[i].ToLive = Summarize(results[i].ToLiveMs)
	}
	return results
}

// restartOnce hot restarts in into epoch and records the latencies, and the
// footprint when epoch is b.footprintRestarts.
func (b *bench) restartOnce(in *instance, epoch int, res *LatencyResult, start time.Duration) error {
	sent := monotonicNow()
	if err := in.signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("SIGHUP for epoch %d: %w", epoch, err)
	}
	executing, err := in.execNanos(epoch)
	if err != nil {
		return fmt.Errorf("epoch %d: %w", epoch, err)
	}
	live, err := in.waitLive(epoch)
	if err != nil {
		return fmt.Errorf("epoch %d: %w", epoch, err)
	}
	res.ToExecMs = append(res.ToExecMs, float64(executing-sent)/1e6)
	res.ToLiveMs = append(res.ToLiveMs, float64(live-sent)/1e6)
	if epoch == b.footprintRestarts {
		cpu, _ := procfs.CPU(in.pid)
		res.Restarts = epoch
		res.RestartCPUMs = ms(cpu - start)
		res.CPUPerRestartMs = res.RestartCPUMs / float64(epoch)
		_, res.RestartHWMKiB, _ = procfs.Memory(in.pid)
	}
	// Let the parent drain and exit, so every restart starts from the same
	// state: one LIVE epoch, a quiet host.
	time.Sleep(b.settle)
	return nil
}

// ShutdownResult is measurement 2: SIGTERM → the restarter's exit.
type ShutdownResult struct {
	ToExitMs  []float64 `json:"sigterm_to_exit_ms"`
	ToExit    Summary   `json:"sigterm_to_exit"`
	ExitCodes []int     `json:"exit_codes"`
	Error     string    `json:"error,omitempty"`
}

// runShutdown starts r, hot restarts once (two epochs live, the old one
// draining), sends SIGTERM and times the restarter's exit; b.termRuns times.
func (b *bench) runShutdown(r Restarter) (res ShutdownResult) {
	defer func() { res.ToExit = Summarize(res.ToExitMs) }()
	for run := 0; run < b.termRuns; run++ {
		if err := b.shutdownOnce(r, &res); err != nil {
			res.Error = fmt.Sprintf("run %d: %v", run, err)
			return res
		}
	}
	return res
}

func (b *bench) shutdownOnce(r Restarter, res *ShutdownResult) error {
	in, err := b.launch(r)
	if err != nil {
		return err
	}
	defer in.close()
	if err := in.signal(syscall.SIGHUP); err != nil {
		return err
	}
	if _, err := in.waitLive(1); err != nil {
		return err
	}
	sent := monotonicNow()
	if err := in.signal(syscall.SIGTERM); err != nil {
		return err
	}
	if !in.waitExit(b.termWait + 35*time.Second) {
		return errors.New("no exit after SIGTERM")
	}
	res.ToExitMs = append(res.ToExitMs, float64(in.exitNano-sent)/1e6)
	res.ExitCodes = append(res.ExitCodes, in.state.ExitCode())
	return nil
}

// ChurnResult is measurement 4: traffic through hot restarts.
type ChurnResult struct {
	Restarts      int      `json:"restarts"`
	Clients       int      `json:"clients"`
	Sent          int64    `json:"sent"`
	OK            int64    `json:"ok"`
	Failed        int64    `json:"failed"`
	Refused       int64    `json:"refused"`
	Reset         int64    `json:"reset"`
	Other         int64    `json:"other_errors"`
	Non200        int64    `json:"non_200"`
	EpochsServing int      `json:"epochs_serving"`
	FirstErrors   []string `json:"first_errors,omitempty"`
	Error         string   `json:"error,omitempty"`
}

// runChurn sends traffic from b.clients concurrent clients (half on fresh
// connections, half on keep-alive ones, as Go's client keeps them) while
// hot restarting r b.churnRestarts times.
func (b *bench) runChurn(r Restarter) (res ChurnResult) {
	res.Restarts, res.Clients = b.churnRestarts, b.clients
	in, err := b.launch(r)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer in.close()
	addr, err := in.listenerAddress()
	if err != nil {
		res.Error = err.Error()
		return res
	}
	l := b.startLoad(addr, &res)
	stopClients := l.stop
	time.Sleep(b.settle)
	for epoch := 1; epoch <= b.churnRestarts; epoch++ {
		if err := in.signal(syscall.SIGHUP); err != nil {
			stopClients()
			res.Error = fmt.Sprintf("SIGHUP for epoch %d: %v", epoch, err)
			return res
		}
		if _, err := in.waitLive(epoch); err != nil {
			stopClients()
			res.Error = fmt.Sprintf("epoch %d: %v", epoch, err)
			return res
		}
		time.Sleep(b.settle)
	}
	stopClients()
	return res
}

// load is b.clients concurrent HTTP clients (half on fresh connections,
// half on keep-alive ones, as Go's client keeps them) sending to addr and
// counting into res until stop.
type load struct {
	stop func() // stops the clients and waits for them
}

func (b *bench) startLoad(addr string, res *ChurnResult) *load {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu     sync.Mutex
		epochs = map[string]bool{}
		wg     sync.WaitGroup
	)
	record := func(err error, status int, epoch string) {
		mu.Lock()
		defer mu.Unlock()
		res.Sent++
		switch {
		case err == nil && status == http.StatusOK:
			res.OK++
			epochs[epoch] = true
			return
		case err == nil:
			res.Non200++
		case errors.Is(err, syscall.ECONNREFUSED):
			res.Refused++
		case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
			res.Reset++
		default:
			res.Other++
		}
		res.Failed++
		if len(res.FirstErrors) < 5 {
			if err == nil {
				err = fmt.Errorf("status %d", status)
			}
			res.FirstErrors = append(res.FirstErrors, err.Error())
		}
	}
	for c := 0; c < b.clients; c++ {
		transport := &http.Transport{DisableKeepAlives: c%2 == 1, MaxIdleConnsPerHost: 1}
		client := &http.Client{Transport: transport, Timeout: 5 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer transport.CloseIdleConnections()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
				resp, err := client.Do(req)
				if ctx.Err() != nil {
					return // the bench stopped it; not the server's doing
				}
				if err != nil {
					record(err, 0, "")
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if ctx.Err() != nil {
					return
				}
				record(err, resp.StatusCode, resp.Header.Get("x-fakeenvoy-epoch"))
			}
		}()
	}
	return &load{stop: func() {
		cancel()
		wg.Wait()
		res.EpochsServing = len(epochs)
	}}
}

// StormResult is measurement 5: a burst of SIGHUPs, then SIGTERM.
type StormResult struct {
	Runs []StormRun `json:"runs"`
	// Survived counts runs in which the restarter kept its integrity: it
	// exited by itself (not by a signal, not hung) with 0 or 1 and left no
	// zombie and no process behind.
	Survived        int     `json:"survived"`
	ServiceSurvived int     `json:"service_survived"`
	Requests        int64   `json:"requests"`
	FailedRequests  int64   `json:"failed_requests"`
	Zombies         int     `json:"zombies_max"`
	PeakProcesses   int     `json:"peak_processes_max"`
	ExitMs          Summary `json:"storm_end_to_exit"`
	Error           string  `json:"error,omitempty"`
}

// StormRun is one storm.
type StormRun struct {
	Signals          int     `json:"sighups_sent"`
	StormMs          float64 `json:"storm_ms"`
	ExitedBeforeTERM bool    `json:"exited_before_sigterm"`
	ExitAfterStormMs float64 `json:"storm_end_to_exit_ms"`
	ExitCode         int     `json:"exit_code"` // -1: killed by a signal or hung
	Hung             bool    `json:"hung"`
	Zombies          int     `json:"zombies_after_settle"`
	LeftBehind       int     `json:"processes_left_behind"`
	PeakProcesses    int     `json:"peak_processes"`
	// Load is the traffic sent through the listener from before the storm
	// until SIGTERM (or the restarter's own exit).
	Load ChurnResult `json:"load"`
}

func (b *bench) runStorm(r Restarter) (res StormResult) {
	var exits []float64
	for run := 0; run < b.stormRuns; run++ {
		sr, err := b.stormOnce(r)
		if err != nil {
			res.Error = fmt.Sprintf("run %d: %v", run, err)
			break
		}
		res.Runs = append(res.Runs, sr)
		if !sr.Hung && sr.ExitCode >= 0 && sr.ExitCode <= 1 && sr.Zombies == 0 && sr.LeftBehind == 0 {
			res.Survived++
		}
		if !sr.ExitedBeforeTERM {
			res.ServiceSurvived++
		}
		res.Requests += sr.Load.Sent
		res.FailedRequests += sr.Load.Failed
		res.Zombies = max(res.Zombies, sr.Zombies)
		res.PeakProcesses = max(res.PeakProcesses, sr.PeakProcesses)
		exits = append(exits, sr.ExitAfterStormMs)
	}
	res.ExitMs = Summarize(exits)
	return res
}

func (b *bench) stormOnce(r Restarter) (StormRun, error) {
	var sr StormRun
	in, err := b.launch(r)
	if err != nil {
		return sr, err
	}
	defer in.close()

	addr, err := in.listenerAddress()
	if err != nil {
		return sr, err
	}
	l := b.startLoad(addr, &sr.Load)
	loadStopped := false
	stopLoad := func() {
		if !loadStopped {
			loadStopped = true
			l.stop()
		}
	}
	defer stopLoad()

	samplerDone := make(chan struct{})
	peak := 0
	go func() {
		defer close(samplerDone)
		for {
			peak = max(peak, snapshotTree(in.pid).Descendants)
			select {
			case <-in.exited:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()

	began := monotonicNow()
	for sr.Signals < b.stormSignals {
		if in.signal(syscall.SIGHUP) != nil {
			break // the restarter is gone
		}
		sr.Signals++
	}
	ended := monotonicNow()
	sr.StormMs = float64(ended-began) / 1e6

	select {
	case <-in.exited:
		sr.ExitedBeforeTERM = true
		stopLoad()
	case <-time.After(b.stormSettle):
		sr.Zombies = snapshotTree(in.pid).Zombies
		stopLoad() // before SIGTERM: requests refused at shutdown are not the storm's
		_ = in.signal(syscall.SIGTERM)
	}
	if !in.waitExit(b.termWait + 35*time.Second) {
		sr.Hung, sr.ExitCode = true, -1
		in.stop()
	} else {
		sr.ExitCode = in.state.ExitCode()
		sr.ExitAfterStormMs = float64(in.exitNano-ended) / 1e6
	}
	<-samplerDone
	sr.PeakProcesses = peak
	// Whatever is left of the group once the restarter is gone (zombies
	// handed to the bench, or epochs still running) was left behind.
	time.Sleep(50 * time.Millisecond)
	sr.LeftBehind = len(inGroup(in.pid))
	return sr, nil
}
