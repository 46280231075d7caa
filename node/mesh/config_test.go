package mesh

import (
	"testing"
	"time"
)

// TestProbeConfigDefaults: a zero ProbeConfig is DefaultProbeConfig, and
// a configured GlitchRetries of 0 stays 0 (mesh.probe.glitch_retries: 0,
// no re-probe), where it used to be read as the default 2.
func TestProbeConfigDefaults(t *testing.T) {
	if got := (ProbeConfig{}).withDefaults(); got != DefaultProbeConfig() {
		t.Errorf("zero ProbeConfig = %+v, want DefaultProbeConfig %+v", got, DefaultProbeConfig())
	}
	p := DefaultProbeConfig()
	p.GlitchRetries = 0
	if got := p.withDefaults(); got.GlitchRetries != 0 {
		t.Errorf("GlitchRetries 0 became %d", got.GlitchRetries)
	}
	if got := (ProbeConfig{Interval: time.Minute}).withDefaults(); got.Keepalive != DefaultProbeConfig().Keepalive || got.Interval != time.Minute {
		t.Errorf("partial ProbeConfig = %+v, want its Interval and the default periods", got)
	}
}

// TestTimersDefaults: zero timers take DefaultTimers, set ones are kept.
func TestTimersDefaults(t *testing.T) {
	if got := (Timers{}).withDefaults(); got != DefaultTimers() {
		t.Errorf("zero Timers = %+v, want %+v", got, DefaultTimers())
	}
	if got := (Timers{TTL: time.Minute}).withDefaults(); got.TTL != time.Minute || got.Refresh != DefaultTimers().Refresh {
		t.Errorf("Timers{TTL: 1m} = %+v", got)
	}
}
