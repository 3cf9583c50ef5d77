package database

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// writer inserts numbered rows continuously through the current primary's
// address (what a VIP would give clients) and records which commits were
// acknowledged and when.
type writer struct {
	mu      sync.Mutex
	addr    string
	acks    []ack
	next    int64
	failed  int
	stop    chan struct{}
	stopped chan struct{}
}

type ack struct {
	n  int64
	at time.Time
}

func startWriter(t testing.TB, addr string) *writer {
	w := &writer{addr: addr, next: 1, stop: make(chan struct{}), stopped: make(chan struct{})}
	go w.loop()
	t.Cleanup(w.halt)
	return w
}

// point moves the writer to another address (the VIP moved).
func (w *writer) point(addr string) {
	w.mu.Lock()
	w.addr = addr
	w.mu.Unlock()
}

func (w *writer) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.stopped
}

func (w *writer) loop() {
	defer close(w.stopped)
	var conn *pgx.Conn
	var connAddr string
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		w.mu.Lock()
		addr := w.addr
		n := w.next
		w.next++
		w.mu.Unlock()
		if conn != nil && connAddr != addr {
			closeConn(conn)
			conn = nil
		}
		if conn == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c, err := pgx.Connect(ctx, addr)
			cancel()
			if err != nil {
				w.fail()
				time.Sleep(5 * time.Millisecond)
				continue
			}
			conn, connAddr = c, addr
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := conn.Exec(ctx, "INSERT INTO t (n) VALUES ($1)", n)
		cancel()
		if err != nil {
			// Unknown outcome: not acknowledged, whatever the server did.
			closeConn(conn)
			conn = nil
			w.fail()
			continue
		}
		w.mu.Lock()
		w.acks = append(w.acks, ack{n: n, at: time.Now()})
		w.mu.Unlock()
		// About a thousand commits a second: fine enough for the window,
		// light on a busy machine.
		time.Sleep(time.Millisecond)
	}
}

func (w *writer) fail() {
	w.mu.Lock()
	w.failed++
	w.mu.Unlock()
}

func (w *writer) ackCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acks)
}

// waitAcks waits until k more commits are acknowledged.
func (w *writer) waitAcks(t testing.TB, k int) {
	t.Helper()
	start := w.ackCount()
	waitFor(t, fmt.Sprintf("%d acknowledged writes", k), func() (bool, string) {
		c := w.ackCount()
		return c >= start+k, fmt.Sprintf("%d acks since, %d failures", c-start, w.failed)
	})
}

// snapshot copies the acknowledged commits.
func (w *writer) snapshot() []ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]ack(nil), w.acks...)
}

// window is the write-unavailability window around a fault at t0: the
// longest gap between consecutive acknowledged commits from the last one
// before t0 to the first one after the address moved (moved).
func window(acks []ack, t0, moved time.Time) time.Duration {
	first := -1
	last := -1
	for i, a := range acks {
		if !a.at.After(t0) {
			first = i
		}
		if last < 0 && a.at.After(moved) {
			last = i
		}
	}
	if first < 0 || last < 0 {
		return -1
	}
	var longest time.Duration
	for i := first; i < last; i++ {
		longest = max(longest, acks[i+1].at.Sub(acks[i].at))
	}
	return longest
}

// lost lists acknowledged rows missing from got.
func lost(acks []ack, got map[int64]bool) []int64 {
	var missing []int64
	for _, a := range acks {
		if !got[a.n] {
			missing = append(missing, a.n)
		}
	}
	return missing
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
