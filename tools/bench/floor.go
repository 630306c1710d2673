package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

// floorRoleEnv makes the bench binary run as the floor: the smallest Go
// program that does a restarter's job (fork+exec COMMAND with
// RESTART_EPOCH=N on SIGHUP, TERM the children and exit on SIGTERM). Its
// figures are what any Go restarter pays on this machine for signal
// delivery, the runtime's signal forwarding and os.StartProcess.
const floorRoleEnv = "RESTARTER_BENCH_ROLE"

// floorMain is the floor's main; args are COMMAND [ARG...].
func floorMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "floor: no COMMAND")
		return 2
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	exited := make(chan int, 16)
	live := map[int]*os.Process{}
	epoch := 0
	spawn := func() {
		p, err := os.StartProcess(args[0], args, &os.ProcAttr{
			Env:   append(os.Environ(), "RESTART_EPOCH="+strconv.Itoa(epoch)),
			Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		})
		epoch++
		if err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			return
		}
		live[p.Pid] = p
		go func() { _, _ = p.Wait(); exited <- p.Pid }()
	}
	spawn()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				spawn()
				continue
			}
			for _, p := range live {
				_ = p.Signal(syscall.SIGTERM)
			}
			for len(live) > 0 {
				delete(live, <-exited)
			}
			return 0
		case pid := <-exited:
			delete(live, pid)
		}
	}
}
