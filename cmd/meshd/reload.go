package main

import (
	"log/slog"
	"time"

	"github.com/meshd/meshd/node"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/sdnotify"
)

// reloader reads the node's configuration file again and applies it, for
// SIGHUP and the admin API's POST /api/reload (meshctl reload). It tells
// the service manager RELOADING=1 before and READY=1 after, whether the
// file was applied or refused: a refused file leaves the node running
// its current configuration.
type reloader struct {
	path   string
	node   *node.Node
	log    *slog.Logger
	notify *sdnotify.Notifier
}

func (r *reloader) reload() (node.ReloadReport, error) {
	if r.path == "" {
		r.log.Warn("reload: running on embedded defaults (no -config): nothing to read again")
		return node.ReloadReport{}, node.ErrNoReload
	}
	_ = r.notify.Reloading()
	rep, err := r.apply()
	status := "accepting mail"
	if err != nil {
		r.log.Error("reload refused, configuration unchanged", "config_file", r.path, "err", err)
		status = "accepting mail; last reload refused: " + err.Error()
	} else if len(rep.NeedsRestart) > 0 {
		r.log.Warn("reload: these changes take effect at the next restart", "config_file", r.path, "needs_restart", rep.NeedsRestart)
		status = "accepting mail; restart needed for some changes"
	}
	_ = r.notify.Ready(status)
	return rep, err
}

func (r *reloader) apply() (node.ReloadReport, error) {
	cfg, err := config.Load(r.path)
	if err != nil {
		return node.ReloadReport{}, err
	}
	return r.node.Reload(cfg)
}

// startWatchdog sends WATCHDOG=1 at half the interval the service manager
// asked for (WatchdogSec=), until the returned stop is called.
func startWatchdog(n *sdnotify.Notifier, log *slog.Logger) (stop func()) {
	every := sdnotify.WatchdogInterval() / 2
	if !n.Enabled() || every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := n.Watchdog(); err != nil {
					log.Warn("sd_notify watchdog", "err", err)
				}
			}
		}
	}()
	return func() { close(done); <-exited }
}
