package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
)

// Zero-downtime binary upgrade by listener inheritance (tableflip):
// SIGUSR2 makes the running process start the executable at its own path
// again (replace the file first), with the same arguments and environment
// and with its listening sockets passed as file descriptors. The new
// process builds everything, takes the sockets over and says it is ready;
// only then does the old one stop accepting and drain its downloads for up
// to proxy.drain_timeout, exactly as on SIGTERM, and exit. The sockets are
// never closed, so no connection is refused meanwhile, not even one
// waiting in the kernel's accept queue (with SO_REUSEPORT, closing the old
// listener resets those). A new binary that fails to start, or is not
// ready within upgradeTimeout, is killed and the old one goes on serving.
//
// With -pidfile the ready process writes its PID there, so that a service
// manager follows the new process (systemd: PIDFile=, and ExecReload sends
// SIGHUP, a separate configuration reload).

// upgradeTimeout bounds how long a new binary may take to become ready.
// Building the cache index of a large disk tier takes most of it.
const upgradeTimeout = 5 * time.Minute

// upgrader wraps tableflip for run.
type upgrader struct {
	upg *tableflip.Upgrader
	// ctx ends when the process should stop: on the caller's ctx (SIGTERM)
	// or once a new process is ready.
	ctx    context.Context
	cancel context.CancelFunc
	usr2   chan os.Signal
}

// newUpgrader catches SIGUSR2 from now on, so that the signal never kills
// the process, and inherits the parent's sockets when there is one.
func newUpgrader(ctx context.Context, pidFile string, log *slog.Logger) (*upgrader, error) {
	upg, err := tableflip.New(tableflip.Options{PIDFile: pidFile, UpgradeTimeout: upgradeTimeout})
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	u := &upgrader{upg: upg, usr2: make(chan os.Signal, 1)}
	u.ctx, u.cancel = context.WithCancel(ctx)
	signal.Notify(u.usr2, syscall.SIGUSR2)
	go func() {
		for {
			select {
			case <-u.ctx.Done():
				return
			case <-upg.Exit():
				log.Info("upgrade: the new process is ready; draining and exiting")
				u.cancel()
				return
			case <-u.usr2:
				log.Info("upgrade: starting the new binary")
				if err := upg.Upgrade(); err != nil {
					log.Error("upgrade: failed; this process keeps serving", "err", err)
				}
			}
		}
	}()
	return u, nil
}

// listen opens a listener, or takes over the parent's for the same address.
func (u *upgrader) listen(network, addr string) (net.Listener, error) {
	return u.upg.Listen(network, addr)
}

// ready tells the parent, if any, that this process serves: the parent
// then drains and exits. A failure to notify it is logged by the caller's
// exit path: serving goes on regardless.
func (u *upgrader) ready(log *slog.Logger) func(addr string) {
	return func(string) {
		if err := u.upg.Ready(); err != nil {
			log.Error("upgrade: cannot signal readiness", "err", err)
		}
	}
}

// stop ends the upgrader: no upgrade starts after it.
func (u *upgrader) stop() {
	signal.Stop(u.usr2)
	u.cancel()
	u.upg.Stop()
}
