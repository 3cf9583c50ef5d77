package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/harules/harules/policy"
)

// Loop liveness: the heartbeat sender runs on its own goroutine, so without
// a gate a wedged decision loop (an action stuck in the kernel, a policy
// file on a hung mount) keeps sending heartbeats and peers keep trusting a
// node that no longer acts. The loop stamps every pass; the sender sends
// only while the last pass is recent (the gate), and the agent exits when
// the loop stays stuck (the abort), so the supervisor releases the node's
// VIPs and services as after a crash and announces it to the peers.
//
// Timings, from the policy (D = policy.DetectionTime(), tick = the loop's
// ticker period, the shortest heartbeat interval or reevaluate):
//
//	gate  = max(D/2, 2 x tick)              heartbeats stop
//	abort = max(D, 2 x gate, minLoopAbort)  the agent exits (WedgedExitCode)
//
// The loop never waits on an action (jobs run on workers, runJob), so a
// long service start or promotion does not count against it.
const (
	// minLoopAbort keeps a short scheduling or fsync stall of the loop at
	// fast heartbeat intervals from killing the agent: the gate already
	// silenced it, and a peer that takes over meanwhile probes the VIP
	// first, so exiting later costs time, never safety.
	minLoopAbort = time.Second
	// WedgedExitCode is the agent's exit status when its decision loop
	// stayed stuck past the abort time (EX_SOFTWARE).
	WedgedExitCode = 70
)

// liveness tracks the decision loop's passes. passed and alive are called
// from the loop and the senders; they only touch atomics.
type liveness struct {
	log *slog.Logger
	now func() time.Time
	// lastPass is the loop's last completed pass (Unix ns).
	lastPass atomic.Int64
	gate     atomic.Int64 // ns
	abort    atomic.Int64 // ns
	// stopping is set when the loop returned (shutdown) to the end of the
	// grace the handover and the final release get (Unix ns; 0: running).
	stopping atomic.Int64

	// onWedged is called (once per stuck episode) when the loop has been
	// stuck for the abort time; the default dumps every goroutine's stack
	// and exits with WedgedExitCode.
	onWedged func(stuck time.Duration)
	// onResume is called when progress follows a closed gate: the agent
	// kicks its senders, so peers hear it again at once rather than up to
	// an interval later (at fast intervals that interval could complete
	// a detection time of silence).
	onResume func()
	sd       *sdNotifier     // nil: not run by systemd with a notify socket
	dog      *watchdogDevice // nil: no hardware/softdog watchdog armed
	ready    sync.Once
}

func newLiveness(log *slog.Logger, now func() time.Time, p *policy.Policy, onWedged func(time.Duration)) *liveness {
	l := &liveness{log: log, now: now, onWedged: onWedged}
	if l.onWedged == nil {
		l.onWedged = l.exitWedged
	}
	l.setPolicy(p)
	l.stamp(now()) // the startup counts as progress: the gate opens at once
	return l
}

// loopTick is the loop's ticker period: its idle passes come this often.
func loopTick(p *policy.Policy) time.Duration {
	tick := p.Cluster.Reevaluate
	for _, h := range p.Paths {
		tick = min(tick, h.Interval)
	}
	return tick
}

// livenessTimes returns the gate and abort times of a policy.
func livenessTimes(p *policy.Policy) (gate, abort time.Duration) {
	tick := loopTick(p)
	gate = max(p.DetectionTime()/2, 2*tick)
	abort = max(p.DetectionTime(), 2*gate, minLoopAbort)
	return gate, abort
}

// setPolicy takes the timings of a (re)loaded policy.
func (l *liveness) setPolicy(p *policy.Policy) {
	gate, abort := livenessTimes(p)
	l.gate.Store(int64(gate))
	l.abort.Store(int64(abort))
}

// passed records that the decision loop completed a pass (an event handled
// or a tick) at now. The loop calls it after every pass, ticks included.
// The first pass tells systemd the agent is ready: a Type=notify start
// completes only once the agent decides.
func (l *liveness) passed(now time.Time) {
	l.stamp(now)
	l.ready.Do(func() {
		if l.sd != nil {
			if err := l.sd.send("READY=1\nSTATUS=deciding"); err != nil {
				l.log.Warn("cannot tell systemd the agent is ready", "error", err)
			}
		}
	})
}

// stamp records progress at now.
func (l *liveness) stamp(now time.Time) {
	prev := l.lastPass.Swap(now.UnixNano())
	if now.UnixNano()-prev >= l.gate.Load() && l.onResume != nil {
		l.onResume()
	}
}

// alive is the heartbeat sender's gate: false once the loop has made no
// pass for the gate time.
func (l *liveness) alive() bool {
	now := l.now().UnixNano()
	if until := l.stopping.Load(); until != 0 {
		return now < until
	}
	return now-l.lastPass.Load() < l.gate.Load()
}

// shuttingDown stops judging the loop's passes: it returned, and the
// handover and release that follow must still be heard. They get grace;
// a shutdown stuck beyond it counts as stuck (heartbeats stop, the agent
// exits and the supervisor releases), so it cannot pet the watchdogs for
// ever.
func (l *liveness) shuttingDown(grace time.Duration) {
	l.stopping.Store(l.now().Add(grace).UnixNano())
}

// shutdownGrace is what a shutdown gets beyond the handover timeout: the
// final release stops every service, each within its own stop timeout.
const shutdownGrace = 5 * time.Minute

// stuckFor returns how long the loop has shown no progress at now, counting
// from ref at the earliest (the monitor's own resumption after a stall of
// the whole process).
func (l *liveness) stuckFor(now, ref time.Time) time.Duration {
	last := time.Unix(0, l.lastPass.Load())
	if until := l.stopping.Load(); until != 0 {
		if now.UnixNano() < until {
			return 0
		}
		last = time.Unix(0, until) // stuck since the grace ended
	}
	if ref.After(last) {
		last = ref
	}
	return max(now.Sub(last), 0)
}

// run watches the loop until ctx is done: it pets systemd's watchdog and
// the watchdog device while the loop makes progress and calls onWedged
// when it has not for the abort time. It wakes a few times per abort
// time, not per heartbeat.
func (l *liveness) run(ctx context.Context) {
	period := time.Duration(l.abort.Load()) / 4
	if l.sd != nil && l.sd.watchdog > 0 {
		period = min(period, l.sd.watchdog/4)
	}
	if l.dog != nil {
		period = min(period, l.dog.timeout/4)
	}
	period = max(period, time.Millisecond)
	ref := l.now() // progress is judged from here at the earliest
	fired := false
	timer := time.NewTimer(period)
	defer timer.Stop()
	due := ref.Add(period)
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := l.now()
		if late := now.Sub(due); late > period {
			// The monitor itself did not run for a while: the whole
			// process or host stalled (the pause guard's case), not the
			// loop alone. The loop gets a full abort time from now.
			ref = now
		}
		stuck := l.stuckFor(now, ref)
		abort := time.Duration(l.abort.Load())
		switch {
		case stuck < abort:
			fired = false
			l.pet()
		case !fired:
			fired = true
			l.onWedged(stuck)
		}
		timer.Reset(period)
		due = l.now().Add(period)
	}
}

// pet tells systemd's watchdog and the watchdog device that the agent is
// alive.
func (l *liveness) pet() {
	if l.sd != nil && l.sd.watchdog > 0 {
		if err := l.sd.send("WATCHDOG=1"); err != nil {
			l.log.Warn("cannot pet systemd's watchdog", "error", err)
		}
	}
	if l.dog != nil {
		l.dog.pet()
	}
}

// exitWedged is the default onWedged: the agent cannot act any more, so it
// exits; the supervisor (or systemd's ExecStopPost) releases what the node
// holds and the peers take over. The stacks show where the loop is stuck.
func (l *liveness) exitWedged(stuck time.Duration) {
	l.log.Error("decision loop stuck: exiting so the supervisor releases this node's VIPs and services and the peers take over",
		"stuck_for", stuck.Round(time.Millisecond).String(), "abort_after", time.Duration(l.abort.Load()).String(), "exit_code", WedgedExitCode)
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	fmt.Fprintf(os.Stderr, "goroutine stacks of the stuck agent:\n%s\n", buf)
	os.Exit(WedgedExitCode)
}

// startLiveness arms the watchdog device (if configured) and starts the
// monitor; the returned stop ends it and disarms the device (a clean stop
// must not reboot the machine). It runs after the startup release, which
// may take as long as stopping every service.
func (a *Agent) startLiveness() (stop func(), err error) {
	a.progress.sd = newSDNotifier(a.cfg.Systemd)
	a.progress.onResume = a.kick
	if a.cfg.WatchdogDevice != "" {
		if a.progress.dog, err = openWatchdog(a.cfg.WatchdogDevice, a.cfg.WatchdogTimeout, a.log); err != nil {
			return nil, err
		}
	}
	gate, abort := livenessTimes(a.policy)
	a.log.Info("loop liveness armed", "heartbeats_stop_after", gate.String(), "exit_after", abort.String(),
		"systemd_watchdog", a.cfg.Systemd.Watchdog.String())
	a.progress.stamp(a.now())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.progress.run(ctx)
	}()
	return func() {
		cancel()
		<-done
		if a.progress.dog != nil {
			if err := a.progress.dog.disarm(); err != nil {
				a.log.Error("watchdog", "error", err)
			}
		}
	}, nil
}
