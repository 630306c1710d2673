package main

import (
	"os"
	"testing"
	"time"
)

func TestReadCPUIsFinerThanTheTick(t *testing.T) {
	// /proc/PID/stat counts CPU time in 10 ms ticks; a hot restart costs a
	// few ms. Spinning until readCPU has grown, it must not have grown by
	// whole ticks.
	before, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, err := readCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if grown := now - before; grown >= time.Millisecond {
			if grown%clockTick == 0 {
				t.Errorf("readCPU grew by %v: whole ticks, not finer", grown)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("readCPU did not grow by 1 ms in 10 s of spinning")
		}
	}
}
