package backup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	needRoot(t, "mounting a tmpfs for the headroom test")
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0750"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func TestHeadroomOnSmallFilesystem(t *testing.T) {
	ctx := context.Background()
	mnt := mountTmpfs(t, "12m")
	store := openStore(t, filepath.Join(mnt, "store"))
	r := &Runner{Store: store, Log: quietLog()}
	const mib = 1 << 20
	job := Job{Name: "db", Source: randomBytes(mib), Retention: Retention{KeepLast: 100}} // default 30% headroom

	// 1. Fill up: runs succeed until the next would eat into the 30%.
	var stored []Record
	var herr *HeadroomError
	for range 20 {
		rec, err := r.Run(ctx, job)
		if err != nil {
			if !errors.As(err, &herr) || !errors.Is(err, ErrInsufficientHeadroom) {
				t.Fatalf("run: %v, want a *HeadroomError", err)
			}
			if rec.Outcome != OutcomeRefused {
				t.Fatalf("refused run has outcome %s", rec.Outcome)
			}
			break
		}
		stored = append(stored, rec)
	}
	if herr == nil || len(stored) < 4 {
		t.Fatalf("after %d runs no refusal (or too early): %v", len(stored), herr)
	}
	u, _ := store.Usage()
	if herr.Total != u.Total || herr.Reserve < uint64(0.3*float64(u.Total)) || herr.Needed < mib || herr.Free >= herr.Reserve+herr.Needed || herr.Pruned != 0 {
		t.Fatalf("headroom error numbers: %+v (usage %+v)", herr, u)
	}
	if u.Free < herr.Reserve {
		t.Fatalf("the headroom was eaten: free %d < reserve %d", u.Free, herr.Reserve)
	}
	if h, _ := store.History("db"); h[len(h)-1].Outcome != OutcomeRefused {
		t.Fatalf("catalogue lacks the refused run: %+v", h[len(h)-1])
	}

	// 2. With a tighter retention the run prunes first, then succeeds.
	job.Retention = Retention{KeepLast: 2}
	rec := mustRun(t, ctx, r, job)
	backups, _ := store.Backups("db")
	if len(backups) != 2 || backups[1].ID != rec.ID {
		t.Fatalf("after prune-then-run: %d backups, want the newest 2", len(backups))
	}
	if h, _ := store.History("db"); h[0].Outcome != OutcomePruned {
		t.Fatalf("oldest run should be marked pruned: %+v", h[0])
	}

	// 3. Ballast fills the disk: even pruning everything retention allows
	// is not enough, the run is refused and the newest good backup stays.
	u, _ = store.Usage()
	reserve := uint64(0.3 * float64(u.Total))
	ballast := filepath.Join(mnt, "ballast")
	writeAt(t, ballast, 0, make([]byte, int(u.Free-reserve+mib/4))) // pruning one 1 MiB backup will not be enough
	job.Retention = Retention{}                                     // would prune all but the newest good
	_, err := r.Run(ctx, job)
	if !errors.As(err, &herr) || herr.Pruned != 1 {
		t.Fatalf("run on a full disk: %v, want a refusal after pruning 1", err)
	}
	backups, _ = store.Backups("db")
	if len(backups) != 1 || backups[0].ID != rec.ID {
		t.Fatalf("the newest good backup must survive: have %+v", backups)
	}
	if err := store.Verify(ctx, "db", rec.ID); err != nil {
		t.Fatalf("newest good backup does not verify: %v", err)
	}
	os.Remove(ballast)

	// 4. A first run has no estimate; it is stopped in flight when it
	// reaches the headroom, and its partial files are removed.
	big := Job{Name: "big", Source: randomBytes(9 * mib)}
	bigRec, err := r.Run(ctx, big)
	if !errors.Is(err, ErrInsufficientHeadroom) || bigRec.Outcome != OutcomeFailed {
		t.Fatalf("oversized first run: %v (outcome %s), want stopped by the headroom", err, bigRec.Outcome)
	}
	if m, _ := filepath.Glob(filepath.Join(store.Dir(), "big", partialPrefix+"*")); len(m) != 0 {
		t.Fatalf("partial files left: %v", m)
	}
	if u2, _ := store.Usage(); u2.Free < reserve {
		t.Fatalf("after the stopped run free %d < reserve %d", u2.Free, reserve)
	}
	if err := store.Verify(ctx, "db", rec.ID); err != nil {
		t.Fatalf("db backup damaged by the stopped run: %v", err)
	}
}

// TestFirstRunRefusedIsRecorded: a job's very first run, refused before
// its directory exists, still lands in the catalogue.
func TestFirstRunRefusedIsRecorded(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "store"))
	r := &Runner{Store: store, Log: quietLog()}
	// No filesystem here has 99.9% free, so the run is refused.
	rec, err := r.Run(context.Background(), Job{Name: "fresh", Source: randomBytes(1 << 10), Headroom: 0.999})
	if _, only := err.(*HeadroomError); !only || rec.Outcome != OutcomeRefused {
		t.Fatalf("first run: %v (outcome %s), want only a *HeadroomError", err, rec.Outcome)
	}
	if h, err := store.History("fresh"); err != nil || len(h) != 1 || h[0].Outcome != OutcomeRefused {
		t.Fatalf("catalogue of a job whose only run was refused: %+v, %v", h, err)
	}
}
