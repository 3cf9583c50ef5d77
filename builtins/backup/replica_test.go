package backup

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func TestReplicaCopiesAndPrune(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	store := openStore(t, filepath.Join(tmp, "store"))
	copies := openStore(t, filepath.Join(tmp, "copies"))
	disk2 := NewDirReplica("disk2", copies)
	var progress []Progress
	job := Job{Name: "db", Source: randomBytes(3 << 20), Retention: Retention{KeepLast: 2}, Replicas: []Replica{disk2},
		Progress: func(p Progress) { progress = append(progress, p) }, Headroom: -1}
	r := &Runner{Store: store, Node: "n1", Log: quietLog()}

	first := mustRun(t, ctx, r, job)
	if !first.Safe() || first.Copies[0].Location != copies.Dir() {
		t.Fatalf("first backup not safe or copy location wrong: %+v", first.Copies)
	}
	if got, _ := copies.Get("db", first.ID); got.SHA256 != first.SHA256 {
		t.Fatalf("copy record %+v, want sha %s", got, first.SHA256)
	}
	// The second run estimates its size from the first.
	progress = nil
	second := mustRun(t, ctx, r, job)
	if len(progress) < 2 || progress[0].Estimate != first.Bytes+first.Bytes/10 {
		t.Fatalf("progress %+v, want estimates of %d", progress, first.Bytes+first.Bytes/10)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i].Done < progress[i-1].Done {
			t.Fatalf("progress goes backwards: %+v", progress)
		}
	}
	third := mustRun(t, ctx, r, job)
	// Retention keeps 2: the first is pruned here and on the replica.
	if _, err := copies.Get("db", first.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := copies.Backups("db"); len(got) != 2 || got[0].ID != second.ID || got[1].ID != third.ID {
		t.Fatalf("replica holds %+v, want the second and third", got)
	}

	// A replica too small for the backup: the copy fails, the backup is
	// stored but not safe, and the replica keeps no partial files.
	tiny := NewDirReplica("tiny", openStore(t, filepath.Join(mountTmpfs(t, "1m"), "copies")))
	job.Replicas = []Replica{disk2, tiny}
	rec, err := r.Run(ctx, job)
	if !errors.Is(err, ErrCopyFailed) || !rec.Good() || rec.Safe() {
		t.Fatalf("run with a failing replica: %v, good=%v safe=%v", err, rec.Good(), rec.Safe())
	}
	c, _ := rec.copyOn("tiny")
	if c.Verified || c.Error == "" {
		t.Fatalf("copy on tiny: %+v", c)
	}
	if c, _ := rec.copyOn("disk2"); !c.Verified {
		t.Fatalf("copy on disk2: %+v", c)
	}
	if m, _ := filepath.Glob(filepath.Join(tiny.Store().Dir(), "db", partialPrefix+"*")); len(m) != 0 {
		t.Fatalf("partial copy left on the replica: %v", m)
	}
	// Retention keeps 2: the third (the newest safe) and this unsafe one.
	backups, _ := store.Backups("db")
	if len(backups) != 2 || backups[0].ID != third.ID {
		t.Fatalf("backups %v: the newest safe (%s) must be kept", backups, third.ID)
	}
	got, _ := store.Get("db", rec.ID)
	if got.Safe() || len(got.Copies) != 2 {
		t.Fatalf("catalogue record %+v", got.Copies)
	}
}
