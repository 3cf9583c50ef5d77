package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"golang.org/x/sys/unix"
)

// bigSparse is the logical size of the sparse test file (kept moderate:
// every hash and comparison reads the holes as zeros).
const bigSparse = 512 << 20

// buildOddTree creates a tree with the file system's awkward cases.
func buildOddTree(t *testing.T, root string) {
	t.Helper()
	mk := func(rel string, data []byte, mode os.FileMode) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask and setuid
			t.Fatal(err)
		}
	}
	deep := filepath.Join("d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10")
	mk("plain.txt", []byte("hello\n"), 0o644)
	mk("with space and ünïcødé ✓.txt", pattern(5000, 1), 0o640)
	mk("new\nline", []byte("a newline in the name\n"), 0o600)
	mk("tab\tand\\backslash", pattern(10, 2), 0o644)
	mk("\xff\xfe-not-utf8", pattern(3000, 3), 0o644)
	mk(filepath.Join(deep, strings.Repeat("long", 40)), pattern(70000, 4), 0o644)
	mk("empty-file", nil, 0o644)
	mk("setuid-bin", pattern(100, 5), 0o4755|os.ModeSetuid)
	mk("exec.sh", []byte("#!/bin/sh\necho hi\n"), 0o700)
	mk("hard-a", pattern(12345, 8), 0o640)
	if err := os.Link(filepath.Join(root, "hard-a"), filepath.Join(root, "d1", "hard-b")); err != nil {
		t.Fatal(err)
	}
	mk("compressible.log", bytes.Repeat([]byte("2026-11-26 INFO all is well\n"), 20000), 0o644)
	for _, d := range []string{"empty-dir", filepath.Join("nested", "empty")} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk(filepath.Join("ro-dir", "inside"), []byte("read-only parent\n"), 0o444)
	if err := os.Chmod(filepath.Join(root, "ro-dir"), 0o555); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "nested"), 0o1777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"link-rel":       "plain.txt",
		"link-abs":       "/etc/hostname",
		"link-dangling":  "nowhere/at/all",
		"link-dir":       "nested",
		"link\nnewline":  "with space and ünïcødé ✓.txt",
		"d1/link-parent": "../plain.txt",
	} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(root, "pipe"), 0o620); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := unix.Mknod(filepath.Join(root, "null-dev"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatal(err)
		}
		mk("owned-by-1234", []byte("owner\n"), 0o644)
		if err := os.Lchown(filepath.Join(root, "owned-by-1234"), 1234, 5678); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(filepath.Join(root, "link-rel"), 4321, 8765); err != nil {
			t.Fatal(err)
		}
	}
	// A large sparse file: data at the start, in the middle, a trailing hole.
	big := filepath.Join(root, "big.sparse")
	writeAt(t, big, 0, pattern(1<<20, 6))
	writeAt(t, big, bigSparse/2+3*4096, pattern(65536, 7))
	writeAt(t, big, bigSparse-bigSparse/4, []byte("deep inside"))
	if err := os.Truncate(big, bigSparse); err != nil {
		t.Fatal(err)
	}
	// A sparse file that starts with a hole and ends with data.
	tail := filepath.Join(root, "tail.sparse")
	writeAt(t, tail, 100<<20-10, []byte("0123456789"))

	// Distinct nanosecond mtimes, children before parents.
	var paths []string
	filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	base := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC).UnixNano()
	for i, p := range slices.Backward(paths) {
		ts := unix.NsecToTimespec(base + int64(i)*1_000_000_123)
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatalf("utimes %q: %v", p, err)
		}
	}
}

func TestFilesRoundTrip(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	buildOddTree(t, src)
	want := snapshotTree(t, src)
	began := time.Now()
	phase := func(name string) { t.Logf("%s done after %v", name, time.Since(began).Round(time.Millisecond)) }

	store := openStore(t, filepath.Join(tmp, "store"))
	runner := &Runner{Store: store, Node: "n1", Log: quietLog()}
	var progress []Progress
	job := Job{Name: "tree", Source: &Files{Root: src, Log: quietLog()}, Retention: Retention{KeepLast: 3},
		Progress: func(p Progress) { progress = append(progress, p) }, Headroom: -1}
	rec := mustRun(t, ctx, runner, job)
	phase("backup")

	if rec.Kind != KindFiles || rec.Node != "n1" || rec.Bytes == 0 || len(rec.SHA256) != 64 || rec.Entries != int64(len(want)) {
		t.Fatalf("unexpected record %+v (tree has %d entries)", rec, len(want))
	}
	if rec.Bytes > 20<<20 {
		t.Errorf("archive is %d bytes: the sparse holes were stored", rec.Bytes)
	}
	if len(progress) == 0 || progress[len(progress)-1].Done != rec.Bytes {
		t.Errorf("progress reports %+v, want the last one at %d bytes", progress, rec.Bytes)
	}
	hist, err := store.History("tree")
	if err != nil || len(hist) != 1 || hist[0].Outcome != OutcomeOK || hist[0].SHA256 != rec.SHA256 {
		t.Fatalf("history = %+v, %v", hist, err)
	}
	if err := store.Verify(ctx, "tree", rec.ID); err != nil {
		t.Fatalf("verify: %v", err)
	}
	phase("verify")

	dest := filepath.Join(tmp, "restored")
	if err := store.RestoreFiles(ctx, "tree", rec.ID, dest, RestoreOptions{}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	phase("restore")
	compareTrees(t, want, snapshotTree(t, dest))
	if a := allocated(t, filepath.Join(dest, "big.sparse")); a > 8<<20 {
		t.Errorf("restored big.sparse allocates %d bytes; want it sparse", a)
	}
	if a := allocated(t, filepath.Join(dest, "tail.sparse")); a > 1<<20 {
		t.Errorf("restored tail.sparse allocates %d bytes; want it sparse", a)
	}

	// Hard links stay hard links.
	var sa, sb unix.Stat_t
	unix.Lstat(filepath.Join(dest, "hard-a"), &sa)
	unix.Lstat(filepath.Join(dest, "d1", "hard-b"), &sb)
	if sa.Ino == 0 || sa.Ino != sb.Ino || sa.Nlink != 2 {
		t.Errorf("hard-a and d1/hard-b are not one inode with 2 links after restore (%d/%d, nlink %d)", sa.Ino, sb.Ino, sa.Nlink)
	}

	// A second restore into a non-empty directory is refused.
	if err := store.RestoreFiles(ctx, "tree", rec.ID, dest, RestoreOptions{}); !errors.Is(err, ErrTargetNotEmpty) {
		t.Errorf("restore into a non-empty dir: %v, want ErrTargetNotEmpty", err)
	}

	// The archive is plain tar+gzip: GNU tar extracts the same tree.
	needCommand(t, "tar", "tar")
	gnu := filepath.Join(tmp, "gnu")
	os.Mkdir(gnu, 0o700)
	cmd := exec.Command("tar", "-xzf", store.pathOf("tree", rec.ID, rec.DataFile()), "-C", gnu, "--numeric-owner", "-p")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GNU tar cannot extract the archive: %v\n%s", err, out)
	}
	phase("GNU tar extract")
	gotGNU := snapshotTree(t, gnu)
	for name, w := range want {
		if g := gotGNU[name]; g.Type != w.Type || g.SHA256 != w.SHA256 || g.Size != w.Size || g.Link != w.Link {
			t.Errorf("GNU tar extracted %q as %v, want %v", name, g, w)
		}
	}
}

func TestVerifyDetectsCorruption(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	os.Mkdir(src, 0o755)
	for i := range 20 {
		writeAt(t, filepath.Join(src, "f"+string(rune('a'+i))), 0, pattern(200_000, byte(i)))
	}
	store := openStore(t, filepath.Join(tmp, "store"))
	copyStore := openStore(t, filepath.Join(tmp, "copy"))
	replica := NewDirReplica("disk2", copyStore)
	runner := &Runner{Store: store, Log: quietLog()}
	job := Job{Name: "data", Source: &Files{Root: src}, Replicas: []Replica{replica}, Retention: Retention{KeepLast: 5}, Headroom: -1}
	rec := mustRun(t, ctx, runner, job)
	if !rec.Safe() {
		t.Fatalf("backup with a verified copy is not safe: %+v", rec.Copies)
	}
	if err := copyStore.Verify(ctx, "data", rec.ID); err != nil {
		t.Fatalf("copy does not verify: %v", err)
	}

	flip := func(path string, off int64) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x5a
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}

	// Corrupt the copy: the local backup still verifies, the copy does not,
	// and the record is no longer safe.
	flip(copyStore.pathOf("data", rec.ID, rec.DataFile()), rec.Bytes/2)
	got, err := runner.Verify(ctx, job, rec.ID)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "disk2") {
		t.Fatalf("verify with a corrupted copy: %v, want ErrCorrupt naming disk2", err)
	}
	if got.Safe() {
		t.Fatalf("record still safe after its copy went bad: %+v", got.Copies)
	}
	if stored, _ := store.Get("data", rec.ID); stored.Safe() {
		t.Fatalf("catalogue still says safe: %+v", stored.Copies)
	}
	if err := store.Verify(ctx, "data", rec.ID); err != nil {
		t.Fatalf("local backup should still verify: %v", err)
	}

	// Corrupt the local archive in the middle.
	flip(store.pathOf("data", rec.ID, rec.DataFile()), rec.Bytes/2)
	if err := store.Verify(ctx, "data", rec.ID); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("verify of a corrupted archive: %v, want ErrCorrupt", err)
	}
	if err := store.RestoreFiles(ctx, "data", rec.ID, filepath.Join(tmp, "r"), RestoreOptions{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore of a corrupted archive: %v, want ErrCorrupt", err)
	}

	// A fresh backup, then a manifest that lies about one file's hash.
	rec2 := mustRun(t, ctx, runner, job)
	mpath := store.pathOf("data", rec2.ID, manifestFile)
	m, _ := os.ReadFile(mpath)
	i := bytes.Index(m, []byte(`"sha256":"`)) + len(`"sha256":"`)
	m[i] ^= 1 // a hex digit becomes another
	os.WriteFile(mpath, m, 0o640)
	if err := store.Verify(ctx, "data", rec2.ID); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("verify with a tampered manifest: %v, want ErrCorrupt", err)
	}
}

// maliciousArchive writes a tar.gz with the given entries.
func maliciousArchive(t *testing.T, hdrs []*tar.Header) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	zw.Close()
	return &buf
}

func TestRestoreRefusesEscapingPaths(t *testing.T) {
	tmp := t.TempDir()
	outside := filepath.Join(tmp, "outside")
	os.Mkdir(outside, 0o755)
	cases := map[string][]*tar.Header{
		"dotdot":        {{Name: "../outside/evil", Typeflag: tar.TypeReg, Size: 3, Mode: 0o644}},
		"nested dotdot": {{Name: "a/../../outside/evil", Typeflag: tar.TypeReg, Size: 3, Mode: 0o644}},
		"absolute":      {{Name: filepath.Join(outside, "evil"), Typeflag: tar.TypeReg, Size: 3, Mode: 0o644}},
		"through symlink": {
			{Name: "lnk", Typeflag: tar.TypeSymlink, Linkname: outside},
			{Name: "lnk/evil", Typeflag: tar.TypeReg, Size: 3, Mode: 0o644},
		},
		"hard link out": {
			{Name: "h", Typeflag: tar.TypeLink, Linkname: "../outside/victim"},
		},
		"through relative symlink": {
			{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../outside"},
			{Name: "up/evil", Typeflag: tar.TypeReg, Size: 3, Mode: 0o644},
		},
	}
	for name, hdrs := range cases {
		t.Run(name, func(t *testing.T) {
			dest := filepath.Join(tmp, "dest-"+strings.ReplaceAll(name, " ", "-"))
			_, err := extractArchive(context.Background(), maliciousArchive(t, hdrs), nil, dest, RestoreOptions{})
			if !errors.Is(err, ErrUnsafePath) {
				t.Errorf("extract: %v, want ErrUnsafePath", err)
			}
			if _, err := os.Lstat(filepath.Join(outside, "evil")); err == nil {
				t.Fatalf("a file was written outside the restore directory")
			}
		})
	}
}
