package disk

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSpecFromParams(t *testing.T) {
	s, err := SpecFromParams(map[string]string{"device": "LABEL=data", "mountpoint": "/srv/data/", "fstype": "xfs",
		"options": "noatime,ro", "fsck": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Device != "LABEL=data" || s.Mountpoint != "/srv/data" || s.FSType != "xfs" || !s.Fsck || !s.readOnly() {
		t.Fatalf("unexpected spec %+v", s)
	}
	if _, err := SpecFromParams(map[string]string{"device": "/dev/x", "mountpoint": "/m", "fsck": "maybe"}); err == nil {
		t.Fatal("fsck=maybe accepted")
	}
	if _, err := SpecFromParams(map[string]string{"device": "/dev/x", "mountpoint": "rel"}); err == nil {
		t.Fatal("relative mountpoint accepted")
	}
	flags, data := mountFlags("noatime, ro,errors=remount-ro,defaults,user_xattr")
	if data != "errors=remount-ro,user_xattr" || flags == 0 {
		t.Fatalf("mountFlags: flags %x data %q", flags, data)
	}
	if got := unescapeMount(`/mnt/a\040b`); got != "/mnt/a b" {
		t.Fatalf("unescape: %q", got)
	}
}

func TestTimingValidate(t *testing.T) {
	if err := DefaultTiming().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if err := testTiming.Validate(); err != nil {
		t.Fatalf("test timing: %v", err)
	}
	bad := DefaultTiming()
	bad.Renew = 7 * time.Second // 2*(7+2) > 15
	if err := bad.Validate(); err == nil {
		t.Fatal("a lease that fits less than two renewals was accepted")
	}
	bad = DefaultTiming()
	bad.Margin = time.Second
	if err := bad.Validate(); err == nil {
		t.Fatal("a margin under a tenth of the lease was accepted")
	}
	if s, err := SlotFor("b", []string{"c", "a", "b", "a"}); err != nil || s != 2 {
		t.Fatalf("SlotFor = %d, %v; want 2", s, err)
	}
	if _, err := SlotFor("z", []string{"a"}); err == nil {
		t.Fatal("SlotFor accepted a node outside the list")
	}
}

func TestAreaFormatSlotsAndOverlap(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	dev := formattedLoop(t)
	end, fstype, err := filesystemEnd(dev)
	if err != nil {
		t.Fatal(err)
	}
	a, err := OpenArea(ctx, dev)
	if err != nil {
		t.Fatalf("OpenArea after Format: %v", err)
	}
	defer a.Close()
	if fstype != "ext" || end == 0 || end > a.offset {
		t.Fatalf("filesystem (%s) ends at %d, area at %d: want 0 < end <= area", fstype, end, a.offset)
	}
	if err := FormatArea(ctx, dev, false); err == nil || !strings.Contains(err.Error(), "already has a lease area") {
		t.Fatalf("FormatArea over an existing area: %v", err)
	}
	want := Slot{Index: 2, Node: "node2", Incarnation: 7, Seq: 42, WallTime: time.Unix(1700000000, 5), Claim: ClaimHeld, LeaseLength: time.Second}
	if err := a.WriteSlot(ctx, RegionLease, want); err != nil {
		t.Fatal(err)
	}
	// A second open (another "host") sees the write.
	b, err := OpenArea(ctx, dev)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got, err := b.ReadSlots(ctx, RegionLease, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Empty() || got[1] != want || !got[2].Empty() {
		t.Fatalf("read back %+v, want slot 2 = %+v and the others empty", got, want)
	}
	if hb, err := b.ReadSlots(ctx, RegionHeartbeat, 2, 1); err != nil || !hb[0].Empty() {
		t.Fatalf("heartbeat region must be separate from the lease region: %+v %v", hb, err)
	}
	// A torn write (bit flip) is an error, never an empty slot.
	buf := alignedBuf(BlockSize)
	if err := want.encode(buf); err != nil {
		t.Fatal(err)
	}
	buf[20] ^= 0xff
	if _, err := a.f.WriteAt(buf, a.offset+2*BlockSize); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadSlots(ctx, RegionLease, 2, 1); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("corrupt slot: %v", err)
	}

	// A filesystem over the whole device leaves no room for an area.
	whole := newLoop(t, 16<<20)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", whole).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	if err := FormatArea(ctx, whole, false); err == nil || !strings.Contains(err.Error(), "past the lease area") {
		t.Fatalf("FormatArea over a whole-device filesystem: %v", err)
	}
	if _, err := OpenArea(ctx, whole); !errors.Is(err, ErrNoArea) {
		t.Fatalf("OpenArea without an area: %v, want ErrNoArea", err)
	}
	// UUID= resolves to the device.
	out, err := exec.Command("blkid", "-p", "-o", "value", "-s", "UUID", dev).Output()
	if err != nil {
		t.Fatal(err)
	}
	if p, err := ResolveDevice("UUID=" + strings.TrimSpace(string(out))); err != nil || p != dev {
		t.Fatalf("ResolveDevice(UUID) = %q, %v; want %s", p, err, dev)
	}
}

// leasePair opens the area twice (two "hosts") and makes a lease for each.
func leasePair(t *testing.T, dev string, log *lockedBuffer, lost func(node string, err error)) (*Lease, *Lease) {
	t.Helper()
	var out [2]*Lease
	for i, node := range []string{"node1", "node2"} {
		a, err := OpenArea(context.Background(), dev)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		l, err := NewLease(context.Background(), LeaseConfig{Area: a, Node: node, Nodes: []string{"node1", "node2"},
			Timing: testTiming, Log: testLogger(log).With("node", node), OnLost: func(err error) {
				if lost != nil {
					lost(node, err)
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		out[i] = l
	}
	return out[0], out[1]
}

func TestLeaseContentionHasOneWinner(t *testing.T) {
	requireRoot(t)
	dev := formattedLoop(t)
	log := &lockedBuffer{}
	l1, l2 := leasePair(t, dev, log, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	winners := 0
	for round := range 8 {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, l := range []*Lease{l1, l2} {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = l.Acquire(ctx) }()
		}
		wg.Wait()
		held := 0
		for i, l := range []*Lease{l1, l2} {
			if errs[i] == nil {
				held++
				if !l.Held() {
					t.Fatalf("round %d: Acquire succeeded but Held is false", round)
				}
			} else if held := (*HeldError)(nil); !errors.As(errs[i], &held) {
				t.Fatalf("round %d: unexpected error %v", round, errs[i])
			}
		}
		if held > 1 {
			t.Fatalf("round %d: BOTH nodes acquired the lease\n%s", round, log.String())
		}
		winners += held
		for _, l := range []*Lease{l1, l2} {
			if l.Held() {
				if err := l.Release(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Let both see the release before the next round.
		_ = l1.Refresh(ctx)
		_ = l2.Refresh(ctx)
	}
	if winners < 4 {
		t.Fatalf("only %d of 8 contended rounds had a winner: the backoff does not resolve contention", winners)
	}
	t.Logf("%d of 8 simultaneous acquires had exactly one winner, none had two", winners)
}

func TestLeaseExpiryAndTakeoverTiming(t *testing.T) {
	requireRoot(t)
	dev := formattedLoop(t)
	log := &lockedBuffer{}
	lostAt := make(chan time.Time, 2)
	l1, l2 := leasePair(t, dev, log, func(node string, err error) {
		if node == "node1" {
			lostAt <- time.Now()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l1.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	go l2.Run(ctx) // node2 keeps watching; node1 never renews
	var held *HeldError
	if err := l2.Acquire(ctx); !errors.As(err, &held) || held.Holder != "node1" {
		t.Fatalf("node2 acquired while node1 holds: %v", err)
	}
	if !strings.Contains(held.Error(), "override") {
		t.Fatalf("the refusal does not say how to override: %v", held)
	}
	if h := l2.Holder(); h != "node1" {
		t.Fatalf("node2 sees holder %q, want node1", h)
	}
	validUntil := l1.ValidUntil()
	var acquiredAt time.Time
	for acquiredAt.IsZero() {
		err := l2.Acquire(ctx)
		switch {
		case err == nil:
			acquiredAt = time.Now()
		case errors.As(err, &held):
			time.Sleep(50 * time.Millisecond)
		default:
			t.Fatal(err)
		}
	}
	select {
	case at := <-lostAt:
		if at.After(acquiredAt) {
			t.Errorf("node1 learnt it lost the lease at %s, after node2 acquired at %s", at, acquiredAt)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("node1's OnLost never ran")
	}
	if l1.Held() {
		t.Fatal("node1 still thinks it holds the lease")
	}
	// The argument of the package doc: the taker starts at least Margin after
	// the old holder's own lease ran out.
	if gap := acquiredAt.Sub(validUntil); gap < testTiming.Margin {
		t.Fatalf("node2 acquired %s after node1's lease ran out; want >= margin %s", gap, testTiming.Margin)
	}
}

func TestLeaseForceAcquireFencesLiveHolder(t *testing.T) {
	requireRoot(t)
	dev := formattedLoop(t)
	log := &lockedBuffer{}
	lost := make(chan time.Time, 2)
	l1, l2 := leasePair(t, dev, log, func(node string, err error) {
		if node == "node1" {
			lost <- time.Now()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l1.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	go l1.Run(ctx)
	if err := l2.ForceAcquire(ctx, ""); err == nil {
		t.Fatal("a force acquire without a reason was accepted")
	}
	start := time.Now()
	if err := l2.ForceAcquire(ctx, "test: operator says node1 is dead"); err != nil {
		t.Fatal(err)
	}
	done := time.Now()
	select {
	case at := <-lost:
		if at.After(done) {
			t.Fatalf("the live holder fenced itself only after the forced acquire completed")
		}
	default:
		t.Fatalf("the live holder did not give the lease up before the forced acquire returned\n%s", log.String())
	}
	if w := testTiming.Renew + testTiming.IOTimeout + testTiming.Margin; done.Sub(start) < w {
		t.Fatalf("forced acquire over a live holder took %s, want >= %s", done.Sub(start), w)
	}
	if !l2.Held() || l1.Held() {
		t.Fatalf("after the override node2 held=%v node1 held=%v", l2.Held(), l1.Held())
	}
	if !bytes.Contains([]byte(log.String()), []byte("OPERATOR OVERRIDE")) || !strings.Contains(log.String(), "operator says node1 is dead") {
		t.Fatalf("the override was not logged with its reason:\n%s", log.String())
	}
}

// TestLeaseStaleIntentYieldsAtOnce: node1 wrote an intent and stopped (it
// crashed while acquiring). node2's Acquire reports the intent as a
// *HeldError after one read, without the contention backoff (its caller,
// the agent's loop, must not block on it), and the error's Since stays the
// same until node1 writes again.
func TestLeaseStaleIntentYieldsAtOnce(t *testing.T) {
	requireRoot(t)
	dev := formattedLoop(t)
	l1, l2 := leasePair(t, dev, &lockedBuffer{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := l1.write(ctx, ClaimIntent, false); err != nil {
		t.Fatal(err)
	}
	var first *HeldError
	for i := range 3 {
		reads := l2.cfg.Area.Stats().Reads
		err := l2.Acquire(ctx)
		var held *HeldError
		if !errors.As(err, &held) || held.Holder != "node1" || held.Claim != ClaimIntent {
			t.Fatalf("attempt %d: Acquire over node1's intent: %v; want a HeldError for node1's intent", i, err)
		}
		if n := l2.cfg.Area.Stats().Reads - reads; n != 1 {
			t.Errorf("attempt %d: Acquire read the area %d times; want 1 (no backoff before its own intent)", i, n)
		}
		if first == nil {
			first = held
		} else if !held.Since.Equal(first.Since) {
			t.Errorf("attempt %d: Since moved from %s to %s although node1's slot did not change", i, first.Since, held.Since)
		}
	}
	if _, err := l1.write(ctx, ClaimIntent, false); err != nil {
		t.Fatal(err)
	}
	var held *HeldError
	if err := l2.Acquire(ctx); !errors.As(err, &held) || !held.Since.After(first.Since) {
		t.Fatalf("after node1 wrote again: %v (Since %v, first %s); want a later Since", err, held, first.Since)
	}
}
