package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/engine"
	"github.com/harules/harules/policy"
)

func TestVerifyLogIsBoundedAndKeepsConcurrentAppends(t *testing.T) {
	log := StateVerifyLog(t.TempDir())
	if got, err := log.Read(); err != nil || len(got) != 0 {
		t.Fatalf("a missing log: %v %v; want empty", got, err)
	}
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	// Writers in parallel (each append opens its own lock file
	// description, so flock serialises them as it would the CLI and the
	// agent).
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				e := VerifyEntry{Job: "j", Store: StoreTarget, ID: fmt.Sprintf("w%d-%d", w, i), At: t0.Add(time.Duration(w*20+i) * time.Second), OK: true}
				if err := log.Append(e); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	got, err := log.Read()
	if err != nil || len(got) != 160 {
		t.Fatalf("after 160 concurrent appends: %d entries, %v", len(got), err)
	}
	for i := 1; i < len(got); i++ {
		if got[i].At.Before(got[i-1].At) {
			t.Fatalf("entries out of order at %d: %v after %v", i, got[i].At, got[i-1].At)
		}
	}
	// Beyond the bound the oldest go.
	var many []VerifyEntry
	for i := range verifyLogKeep {
		many = append(many, VerifyEntry{Job: "j", Store: "copy", ID: fmt.Sprintf("m%d", i), At: t0.Add(time.Hour + time.Duration(i)*time.Second)})
	}
	if err := log.Append(many...); err != nil {
		t.Fatal(err)
	}
	got, _ = log.Read()
	if len(got) != verifyLogKeep || got[0].ID != "m0" || got[len(got)-1].ID != fmt.Sprintf("m%d", verifyLogKeep-1) {
		t.Fatalf("bounded log: %d entries from %s to %s", len(got), got[0].ID, got[len(got)-1].ID)
	}
	if fi, _ := os.Stat(log.Path); fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v, want 0600", fi.Mode().Perm())
	}
	last, ok := LastVerify(got, "j", "copy", "m5")
	if !ok || last.ID != "m5" {
		t.Errorf("LastVerify of one backup: %+v %v", last, ok)
	}
	if _, ok := LastVerify(got, "j", StoreTarget, ""); ok {
		t.Errorf("LastVerify found a target entry the bound dropped")
	}
	// A damaged log is kept aside and recording goes on.
	if err := os.WriteFile(log.Path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := log.Read(); err == nil {
		t.Fatal("reading a damaged log: want an error")
	}
	if err := log.Append(VerifyEntry{Job: "j", ID: "after", At: t0}); err != nil {
		t.Fatal(err)
	}
	if got, err := log.Read(); err != nil || len(got) != 1 || got[0].ID != "after" {
		t.Fatalf("after a damaged log: %+v %v", got, err)
	}
	if b, err := os.ReadFile(log.Path + ".damaged"); err != nil || string(b) != "{not json" {
		t.Errorf("the damaged log was not kept aside: %q %v", b, err)
	}
}

// storedBackup runs a real files backup with a copy through the executor.
func storedBackup(t *testing.T) (e *Executor, job *policy.Backup, id, dir string, sink *recordSink) {
	t.Helper()
	dir = t.TempDir()
	src := filepath.Join(dir, "src")
	writeTree(t, src, map[string]string{"a.txt": "alpha", "sub/b.txt": strings.Repeat("beta ", 100000)})
	job = &policy.Backup{Name: "site", Kind: "files", Params: map[string]string{"target": filepath.Join(dir, "store"), "source": src,
		"copy_to": filepath.Join(dir, "copy"), "headroom_percent": "0"}}
	e, _, sink = backupExecutor(t, job)
	if err := e.Backup(t.Context(), engine.BackupRun{Job: "site", Node: "n1", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	st := waitFinished(t, e, "site")
	if st.Outcome != "ok" {
		t.Fatalf("backup: %+v", st)
	}
	return e, job, st.ID, dir, sink
}

func TestVerifyStoresGivesOneEntryPerStore(t *testing.T) {
	_, pb, id, dir, _ := storedBackup(t)
	job, target, copyTo, err := JobFromPolicy(pb)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := backup.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs, _, err := backup.Open(copyTo)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	job.Replicas = []backup.Replica{backup.NewDirReplica("copy", cs)}

	rec, entries, err := VerifyStores(t.Context(), st, job, id, "", nil)
	if err != nil || len(entries) != 2 || entries[0].Store != StoreTarget || entries[0].Location != target ||
		entries[1].Store != "copy" || entries[1].Location != copyTo || !entries[0].OK || !entries[1].OK {
		t.Fatalf("verify of an intact backup: %v %+v", err, entries)
	}
	if entries[0].Bytes != StoredBytes(rec) || entries[0].Bytes <= rec.Bytes || entries[0].At.IsZero() {
		t.Errorf("entry sizes and times: %+v (record %d bytes)", entries[0], rec.Bytes)
	}

	// Corrupt the copy: the target still verifies, the copy is corrupt,
	// and the catalogue records the copy as not verified.
	data := filepath.Join(copyTo, "site", id, rec.DataFile())
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(data, b, 0o640); err != nil {
		t.Fatal(err)
	}
	rec, entries, err = VerifyStores(t.Context(), st, job, id, "", nil)
	if !errors.Is(err, backup.ErrCorrupt) || len(entries) != 2 || !entries[0].OK || entries[1].OK || !entries[1].Corrupt || entries[1].Error == "" {
		t.Fatalf("verify with a corrupt copy: %v %+v", err, entries)
	}
	if rec.Safe() {
		t.Errorf("a backup whose copy is corrupt is still safe: %+v", rec.Copies)
	}
	// One store only.
	if _, entries, err = VerifyStores(t.Context(), st, job, id, StoreTarget, nil); err != nil || len(entries) != 1 || !entries[0].OK {
		t.Errorf("verify of the target only: %v %+v", err, entries)
	}
	if _, entries, err = VerifyStores(t.Context(), st, job, id, "copy", nil); err == nil || len(entries) != 1 || !entries[0].Corrupt {
		t.Errorf("verify of the copy only: %v %+v", err, entries)
	}
	if _, _, err = VerifyStores(t.Context(), st, job, id, "tape", nil); !errors.Is(err, ErrUnknownStore) || !strings.Contains(err.Error(), "target, copy") {
		t.Errorf("an unknown store: %v", err)
	}
	if _, _, err = VerifyStores(t.Context(), st, job, "20200101T000000.000Z-000000", "", nil); !errors.Is(err, backup.ErrNotFound) {
		t.Errorf("an unknown backup: %v", err)
	}
	_ = dir
}

// TestExecutorVerifyRunsInTheBackground: while a verify waits for the store
// (the test holds its lock, as a CLI restore would), the job counts as
// busy; once the store is free the verify runs, is logged and reported.
func TestExecutorVerifyRunsInTheBackground(t *testing.T) {
	e, pb, id, dir, sink := storedBackup(t)
	log := StateVerifyLog(t.TempDir())
	held, _, err := backup.Open(pb.Params["target"])
	if err != nil {
		t.Fatal(err)
	}
	op, err := e.StartVerify(VerifyRequest{Job: "site", By: "test"}, log, filepath.Join(dir, "policy.star"))
	if err != nil || op.ID != id || !op.Running || op.Bytes <= 0 {
		t.Fatalf("start verify of latest: %+v %v", op, err)
	}
	if _, err := e.StartVerify(VerifyRequest{Job: "site", ID: id}, log, ""); !errors.Is(err, ErrBusy) {
		t.Errorf("a second verify while one runs: %v, want ErrBusy", err)
	}
	if _, err := e.StartRestore(RestoreRequest{Job: "site", ID: id, Dir: filepath.Join(dir, "r")}); !errors.Is(err, ErrBusy) {
		t.Errorf("a restore while a verify runs: %v, want ErrBusy", err)
	}
	held.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ops := e.BackupOps()
		if len(ops) == 1 && !ops[0].Running {
			op = ops[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the verify did not finish: %+v", ops)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !op.OK || len(op.Verified) != 2 || op.Verified[0].By != "test" || op.Verified[0].Node != "n1" {
		t.Fatalf("finished verify: %+v", op)
	}
	entries, err := log.Read()
	if err != nil || len(entries) != 2 || entries[0].ID != id {
		t.Fatalf("log after the verify: %+v %v", entries, err)
	}
	recs := sink.all()
	if last := recs[len(recs)-1]; !strings.Contains(last.Text, "verify backup site/"+id+": ok") {
		t.Errorf("the verify is not in the records: %+v", last)
	}
	for _, bad := range []struct {
		req  VerifyRequest
		want error
	}{
		{VerifyRequest{Job: "nope"}, ErrUnknownJob},
		{VerifyRequest{Job: "site", ID: "20200101T000000.000Z-000000"}, backup.ErrNotFound},
		{VerifyRequest{Job: "site", Store: "tape"}, ErrUnknownStore},
	} {
		if _, err := e.StartVerify(bad.req, log, ""); !errors.Is(err, bad.want) {
			t.Errorf("verify %+v: %v, want %v", bad.req, err, bad.want)
		}
	}
}

func TestPlanRestoreNeverTargetsExistingData(t *testing.T) {
	e, pb, id, dir, _ := storedBackup(t)
	full := filepath.Join(dir, "full")
	writeTree(t, full, map[string]string{"keep.txt": "precious"})
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req  RestoreRequest
		want error
		text string
	}{
		{RestoreRequest{Job: "site", ID: id, Dir: full}, backup.ErrTargetNotEmpty, "is not empty"},
		{RestoreRequest{Job: "site", ID: id, Dir: pb.Params["source"]}, ErrBadTarget, "live data"},
		{RestoreRequest{Job: "site", ID: id, Dir: filepath.Join(pb.Params["source"], "sub", "new")}, ErrBadTarget, "live data"},
		{RestoreRequest{Job: "site", ID: id, Dir: dir}, ErrBadTarget, "overlaps"},
		{RestoreRequest{Job: "site", ID: id, Dir: filepath.Join(pb.Params["copy_to"], "x")}, ErrBadTarget, "backup store"},
		{RestoreRequest{Job: "site", ID: id, Dir: "relative"}, ErrBadTarget, "absolute"},
		{RestoreRequest{Job: "site", ID: id, File: filepath.Join(dir, "f")}, ErrBadTarget, "give dir"},
		{RestoreRequest{Job: "site", ID: "latest"}, ErrBadTarget, "give dir"},
		{RestoreRequest{Job: "site", ID: "../x", Dir: filepath.Join(dir, "new")}, backup.ErrNotFound, "not in the history"},
	} {
		_, err := e.PlanRestore(c.req)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("plan %+v: %v; want %v saying %q", c.req, err, c.want, c.text)
		}
	}
	if b, err := os.ReadFile(filepath.Join(full, "keep.txt")); err != nil || string(b) != "precious" {
		t.Fatalf("the non-empty target changed: %q %v", b, err)
	}
	for _, ok := range []string{empty, filepath.Join(dir, "new", "deeper")} {
		plan, err := e.PlanRestore(RestoreRequest{Job: "site", ID: "latest", Dir: ok + "/"})
		if err != nil || plan.Request.Dir != ok || plan.Record.ID != id || !strings.Contains(strings.Join(plan.Effects, " "), "extracted into "+ok) {
			t.Errorf("plan into %s: %+v %v", ok, plan, err)
		}
	}
}

func TestReadOffsetFollowsOpenFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data")
	if err := os.WriteFile(path, make([]byte, 10000), 0o600); err != nil {
		t.Fatal(err)
	}
	if n := readOffset(dir); n != 0 {
		t.Fatalf("nothing open: offset %d", n)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(make([]byte, 4321)); err != nil {
		t.Fatal(err)
	}
	if n := readOffset(dir); n != 4321 {
		t.Fatalf("offset %d, want 4321", n)
	}
	if n := readOffset(dir + "x"); n != 0 {
		t.Fatalf("a sibling directory's prefix matched: %d", n)
	}
}

// TestVerifyAfterRun: with params verify="after" a run re-reads its new
// backup from the target and records the check; a backup that does not
// read back as written fails the run.
func TestVerifyAfterRun(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeTree(t, src, map[string]string{"a.txt": strings.Repeat("alpha ", 50000)})
	job := &policy.Backup{Name: "site", Kind: "files", Params: map[string]string{"target": filepath.Join(dir, "store"), "source": src,
		"headroom_percent": "0", "verify": "after"}}
	e, _, _ := backupExecutor(t, job)
	log := StateVerifyLog(t.TempDir())
	e.SetVerifyLog(log)
	if err := e.Backup(t.Context(), engine.BackupRun{Job: "site", Node: "n1", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	st := waitFinished(t, e, "site")
	entries, err := log.Read()
	if st.Outcome != "ok" || err != nil || len(entries) != 1 || entries[0].ID != st.ID || !entries[0].OK ||
		entries[0].By != "after backup" || entries[0].Store != StoreTarget {
		t.Fatalf("run with verify=after: %+v; log %+v %v", st, entries, err)
	}

	// What reads back differs from what was written: the check fails,
	// is recorded, and says so.
	bj, target, _, err := JobFromPolicy(job)
	if err != nil {
		t.Fatal(err)
	}
	store, _, err := backup.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rec, err := store.Get("site", st.ID)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(target, "site", st.ID, rec.DataFile())
	b, _ := os.ReadFile(data)
	b[len(b)/3] ^= 1
	if err := os.WriteFile(data, b, 0o640); err != nil {
		t.Fatal(err)
	}
	err = e.verifyAfter(t.Context(), store, bj, rec)
	if !errors.Is(err, backup.ErrCorrupt) || !strings.Contains(err.Error(), "did not verify when read back") {
		t.Fatalf("verify after a corrupted write: %v", err)
	}
	if entries, _ = log.Read(); len(entries) != 2 || entries[1].OK || !entries[1].Corrupt {
		t.Fatalf("log after the failed check: %+v", entries)
	}

	job.Params["verify"] = "sometimes"
	if _, _, _, err := JobFromPolicy(job); err == nil || !strings.Contains(err.Error(), `verify="sometimes"`) {
		t.Errorf("a bad verify param: %v", err)
	}
}

// BenchmarkVerifyStores measures verify throughput (bytes of the stored
// backup read and checked per second) on a real files backup of
// HARULES_BENCH_MIB MiB (default 64) of incompressible data plus text, in
// the target and a copy. The page cache is warm after the first run.
func BenchmarkVerifyStores(b *testing.B) {
	mib := 64
	if s := os.Getenv("HARULES_BENCH_MIB"); s != "" {
		fmt.Sscan(s, &mib)
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		b.Fatal(err)
	}
	rnd, err := os.Open("/dev/urandom")
	if err != nil {
		b.Fatal(err)
	}
	defer rnd.Close()
	chunk := make([]byte, 1<<20)
	for i := range mib {
		if _, err := io.ReadFull(rnd, chunk); err != nil {
			b.Fatal(err)
		}
		if i%4 == 0 { // a quarter compressible text
			copy(chunk, strings.Repeat("harules backup verify benchmark line\n", len(chunk)/37))
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%03d", i)), chunk, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	target, copyTo := filepath.Join(dir, "store"), filepath.Join(dir, "copy")
	pb := &policy.Backup{Name: "bench", Kind: "files", Params: map[string]string{"target": target, "source": src, "copy_to": copyTo, "headroom_percent": "0"}}
	job, _, _, err := JobFromPolicy(pb)
	if err != nil {
		b.Fatal(err)
	}
	st, _, err := backup.Open(target, backup.WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	cs, _, err := backup.Open(copyTo, backup.WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	defer cs.Close()
	job.Replicas = []backup.Replica{backup.NewDirReplica("copy", cs)}
	rec, err := (&backup.Runner{Store: st, Log: quietLogger()}).Run(b.Context(), job)
	if err != nil {
		b.Fatal(err)
	}
	for _, only := range []string{StoreTarget, ""} {
		name := "target"
		stores := int64(1)
		if only == "" {
			name, stores = "target+copy", 2
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(StoredBytes(rec) * stores)
			for b.Loop() {
				if _, _, err := VerifyStores(b.Context(), st, job, rec.ID, only, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
