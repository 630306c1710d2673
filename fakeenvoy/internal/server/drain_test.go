package server

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// Gradual drain closes with probability elapsed/drain time: the random
// draw in [0, drain time) is compared with the time elapsed.
func TestGradualDrainPacesConnectionClose(t *testing.T) {
	var draw int64
	d := &drainManager{strategy: "gradual", drainTime: time.Hour, random: func(n int64) int64 { return draw * n / 100 }}
	assert.False(t, d.drainClose(), "not draining")

	d.start()
	d.began = time.Now().Add(-30 * time.Minute) // half-way through
	draw = 40
	assert.True(t, d.drainClose(), "a draw below the elapsed share closes")
	draw = 60
	assert.False(t, d.drainClose(), "a draw above it keeps the connection")

	d.began = time.Now().Add(-2 * time.Hour)
	draw = 99
	assert.True(t, d.drainClose(), "past the drain time every response closes")
}

func TestImmediateAndZeroDrainCloseAlways(t *testing.T) {
	never := func(n int64) int64 { return n - 1 }
	for _, d := range []*drainManager{
		{strategy: "immediate", drainTime: time.Hour, random: never},
		{strategy: "gradual", drainTime: 0, random: never},
	} {
		d.start()
		assert.True(t, d.drainClose(), "%s, %v", d.strategy, d.drainTime)
	}
}
