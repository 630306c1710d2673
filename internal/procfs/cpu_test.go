package procfs

import (
	"os"
	"testing"
	"time"
)

func TestReadCPUIsFinerThanTheTick(t *testing.T) {
	// /proc/PID/stat counts CPU time in 10 ms ticks; a hot restart costs a
	// few ms. Spinning until CPU has grown, it must not have grown by
	// whole ticks.
	before, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, err := CPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if grown := now - before; grown >= time.Millisecond {
			if grown%ClockTick == 0 {
				t.Errorf("CPU grew by %v: whole ticks, not finer", grown)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("CPU did not grow by 1 ms in 10 s of spinning")
		}
	}
}
