package config

import (
	"errors"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
)

// StatsConfig is Envoy's StatsConfigImpl (source/server/configuration_impl.cc):
// when the server flushes its stats, and with them asks a hot restart
// parent for its own.
type StatsConfig struct {
	// FlushInterval is stats_flush_interval: the stats flush timer's
	// period, 5 s by default.
	FlushInterval time.Duration
	// FlushOnAdmin is stats_flush_on_admin: no timer at all; each /stats
	// request flushes.
	FlushOnAdmin bool
}

// DefaultStatsFlushInterval is stats_flush_interval's default.
const DefaultStatsFlushInterval = 5 * time.Second

// Stats returns the bootstrap's stats config. Both fields set is Envoy's
// error, which it raises as it builds the server's main configuration:
// after ShutdownAdmin and the admin bind, not when the bootstrap loads.
func (c *Config) Stats() (StatsConfig, error) {
	b := c.Bootstrap
	if b.GetStatsFlushInterval() != nil && b.GetStatsFlush() != nil {
		return StatsConfig{}, errors.New("Only one of stats_flush_interval or stats_flush_on_admin should be set!")
	}
	s := StatsConfig{FlushInterval: DefaultStatsFlushInterval}
	if d := b.GetStatsFlushInterval(); d != nil {
		s.FlushInterval = d.AsDuration()
	}
	if f, ok := b.GetStatsFlush().(*bootstrapv3.Bootstrap_StatsFlushOnAdmin); ok {
		s.FlushOnAdmin = f.StatsFlushOnAdmin
	}
	return s, nil
}
