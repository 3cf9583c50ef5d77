package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
)

// Config configures a Dispatcher.
type Config struct {
	Policy *policy.Policy
	// Node is this agent's node; Incarnation its run (see Event).
	Node        string
	Incarnation uint64
	Logger      *slog.Logger
	// HTTPClient sends webhooks; nil means a client without a global
	// timeout (each attempt has the notifier's timeout).
	HTTPClient *http.Client
	// MaxBackoff caps the doubling retry delay; zero means one minute.
	MaxBackoff time.Duration
}

// Dispatcher turns records into events and delivers them to the policy's
// notifiers. Record never blocks; all methods are safe for concurrent use.
type Dispatcher struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	tr      *translator
	seq     uint64
	workers map[string]*worker
	// retired are workers removed by a reload that still deliver their queue.
	retired []*worker
}

// Stats counts one notifier's deliveries.
type Stats struct {
	Name    string `json:"name"`
	Sent    uint64 `json:"sent"`
	Failed  uint64 `json:"failed"`
	Dropped uint64 `json:"dropped"`
	Queued  int    `json:"queued"`
}

// New starts a delivery goroutine per notifier of cfg.Policy.
func New(cfg Config) *Dispatcher {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{cfg: cfg, log: cfg.Logger, client: client, ctx: ctx, cancel: cancel,
		workers: map[string]*worker{}, tr: newTranslator(cfg.Policy)}
	d.setNotifiers(cfg.Policy.Notifiers)
	return d
}

// Record takes one of the agent's records. It only queues: delivery runs
// on each notifier's own goroutine.
func (d *Dispatcher) Record(r engine.Record) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range d.tr.translate(r) {
		d.seq++
		e.Seq, e.Incarnation = d.seq, d.cfg.Incarnation
		if e.Node == "" {
			e.Node = d.cfg.Node
		}
		for _, name := range slices.Sorted(maps.Keys(d.workers)) {
			if w := d.workers[name]; w.spec.Wants(e.Event) {
				w.push(e)
			}
		}
	}
}

// SetPolicy applies a reloaded policy: unchanged notifiers keep their queue,
// removed or changed ones deliver what they hold and stop, new ones start.
func (d *Dispatcher) SetPolicy(p *policy.Policy) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tr.policy = p
	d.setNotifiers(p.Notifiers)
}

func (d *Dispatcher) setNotifiers(ns []*policy.Notifier) {
	keep := map[string]*worker{}
	for _, n := range ns {
		if w := d.workers[n.Name]; w != nil && sameNotifier(w.spec, n) {
			w.spec = n
			keep[n.Name] = w
			delete(d.workers, n.Name)
			continue
		}
		keep[n.Name] = d.start(n)
	}
	for _, w := range d.workers {
		w.close()
		d.retired = append(d.retired, w)
	}
	d.workers = keep
}

// sameNotifier compares two declarations, ignoring where they are written.
func sameNotifier(a, b *policy.Notifier) bool {
	x, y := *a, *b
	x.Pos, y.Pos = policy.Pos{}, policy.Pos{}
	return reflect.DeepEqual(x, y)
}

func (d *Dispatcher) start(n *policy.Notifier) *worker {
	var s sender
	if n.Webhook != "" {
		s = &webhook{url: n.Webhook, headers: n.Headers, client: d.client}
	} else {
		s = &command{argv: n.Command}
	}
	w := &worker{spec: n, send: s, log: d.log.With("notify", n.Name), maxBackoff: d.cfg.MaxBackoff,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run(d.ctx)
	return w
}

// Stats returns the counters of the current notifiers, by name.
func (d *Dispatcher) Stats() []Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Stats, 0, len(d.workers))
	for _, name := range slices.Sorted(maps.Keys(d.workers)) {
		out = append(out, d.workers[name].stats())
	}
	return out
}

// Close stops taking events and delivers what is queued until ctx ends;
// then pending deliveries are abandoned. It returns ctx's error when
// events were left undelivered.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	all := append(slices.Collect(maps.Values(d.workers)), d.retired...)
	d.workers = map[string]*worker{}
	d.mu.Unlock()
	for _, w := range all {
		w.close()
	}
	defer d.cancel()
	for _, w := range all {
		select {
		case <-w.done:
		case <-ctx.Done():
			d.cancel()
			return fmt.Errorf("notify: undelivered events at shutdown: %w", ctx.Err())
		}
	}
	return nil
}

// sender delivers one event.
type sender interface {
	send(ctx context.Context, e Event, body []byte) error
}

// permanentError is a failure a retry cannot fix (e.g. HTTP 400).
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// worker delivers one notifier's events in order.
type worker struct {
	spec       *policy.Notifier
	send       sender
	log        *slog.Logger
	maxBackoff time.Duration

	mu     sync.Mutex
	queue  []Event
	closed bool
	wake   chan struct{}
	done   chan struct{}

	sent, failed, dropped atomic.Uint64
}

// push queues e, dropping the oldest event when the queue is full.
func (w *worker) push(e Event) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	if len(w.queue) >= max(w.spec.Queue, 1) {
		w.queue = w.queue[1:]
		if w.dropped.Add(1) == 1 {
			w.log.Warn("notification queue full; dropping the oldest events", "queue", w.spec.Queue)
		}
	}
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) next() (e Event, ok, closed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return Event{}, false, w.closed
	}
	e = w.queue[0]
	w.queue = w.queue[1:]
	return e, true, w.closed
}

func (w *worker) stats() Stats {
	w.mu.Lock()
	queued := len(w.queue)
	w.mu.Unlock()
	return Stats{Name: w.spec.Name, Sent: w.sent.Load(), Failed: w.failed.Load(), Dropped: w.dropped.Load(), Queued: queued}
}

func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	for {
		if ctx.Err() != nil {
			// Shutting down past the deadline: what is still queued is
			// given up at once, counted, and logged once.
			w.mu.Lock()
			left := len(w.queue)
			w.queue = nil
			w.mu.Unlock()
			if left > 0 {
				w.dropped.Add(uint64(left))
				w.log.Warn("notifications given up at shutdown", "events", left)
			}
			return
		}
		e, ok, closed := w.next()
		if !ok {
			if closed {
				return
			}
			select {
			case <-w.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		if err := w.deliver(ctx, e); err != nil {
			w.failed.Add(1)
			w.log.Warn("notification not delivered", "event", e.Event, "seq", e.Seq, "error", err)
			continue
		}
		w.sent.Add(1)
	}
}

// deliver tries once plus Retries times, doubling the pause in between.
func (w *worker) deliver(ctx context.Context, e Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	pause := w.spec.Backoff
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, w.spec.Timeout)
		err = w.send.send(actx, e, body)
		cancel()
		if err == nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) || attempt >= w.spec.Retries || ctx.Err() != nil {
			return fmt.Errorf("after %d attempts: %w", attempt+1, err)
		}
		w.log.Debug("notification failed; retrying", "event", e.Event, "attempt", attempt+1, "pause", pause, "error", err)
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("after %d attempts: %w (shutting down)", attempt+1, err)
		}
		pause = min(pause*2, w.maxBackoff)
	}
}
