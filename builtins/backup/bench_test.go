package backup

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// generateTree writes about total bytes of mixed data under dir: log-like
// text (very compressible), JSON records, CSV numbers, and 20% random bytes
// (incompressible), in files from 1 KiB to 8 MiB across nested directories.
func generateTree(tb testing.TB, dir string, total int64) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("node primary standby failover heartbeat backup restore replica quorum fence vip disk service database alert ok error warning latency checkpoint wal segment promote demote")
	var written int64
	for i := 0; written < total; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%17), fmt.Sprintf("e%d", i%5))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			tb.Fatal(err)
		}
		size := int64(1<<10) << rng.IntN(14) // 1 KiB .. 8 MiB
		size = min(size, total-written+1)
		f, err := os.Create(filepath.Join(sub, fmt.Sprintf("f%05d.dat", i)))
		if err != nil {
			tb.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		var n int64
		kind := i % 5
		for n < size {
			var line string
			switch kind {
			case 0: // random
				b := make([]byte, 4096)
				for j := range b {
					b[j] = byte(rng.Uint32())
				}
				line = string(b)
			case 1, 2: // log lines
				line = fmt.Sprintf("2026-11-26T07:%02d:%02d.%06dZ %s %s %s id=%d took=%dms\n",
					rng.IntN(60), rng.IntN(60), rng.IntN(1e6), words[rng.IntN(len(words))], words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(1e6), rng.IntN(5000))
			case 3: // JSON
				line = fmt.Sprintf(`{"id":%d,"name":"%s-%d","score":%.4f,"tags":["%s","%s"]}`+"\n",
					rng.IntN(1e9), words[rng.IntN(len(words))], rng.IntN(1000), rng.Float64()*100, words[rng.IntN(len(words))], words[rng.IntN(len(words))])
			default: // CSV numbers
				line = fmt.Sprintf("%d,%d,%.6f,%d\n", rng.IntN(1e6), rng.IntN(1e9), rng.NormFloat64(), rng.IntN(10))
			}
			w.WriteString(line)
			n += int64(len(line))
		}
		if err := w.Flush(); err != nil {
			tb.Fatal(err)
		}
		f.Close()
		written += n
	}
}

const benchChildEnv = "HARULES_BACKUP_BENCH_CHILD"

// TestHelperBenchBackup is not a test: run as a child process by
// BenchmarkFilesBackup it backs up a tree so its peak RSS can be measured.
func TestHelperBenchBackup(t *testing.T) {
	spec := os.Getenv(benchChildEnv)
	if spec == "" {
		t.Skip("helper process only")
	}
	src, dst, _ := strings.Cut(spec, "|")
	store, _, err := Open(dst, WithLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Store: store, Log: quietLog()}
	// No headroom: the benchmark measures speed, not the machine's free space.
	rec, err := r.Run(context.Background(), Job{Name: "bench", Source: &Files{Root: src}, Retention: Retention{KeepLast: 1}, Headroom: -1})
	if err != nil {
		t.Fatal(err)
	}
	json.NewEncoder(os.Stdout).Encode(rec)
}

// benchSizeEnv sets the size of the generated tree of the files
// benchmarks in MiB (default 200), e.g. HARULES_BACKUP_BENCH_MIB=1024.
const benchSizeEnv = "HARULES_BACKUP_BENCH_MIB"

func benchSize(b *testing.B) int64 {
	s := os.Getenv(benchSizeEnv)
	if s == "" {
		return 200 << 20
	}
	mib, err := strconv.Atoi(s)
	if err != nil || mib < 1 {
		b.Fatalf("%s=%q: want a whole number of MiB", benchSizeEnv, s)
	}
	return int64(mib) << 20
}

// BenchmarkFilesBackup compares a files backup (child process, so its peak
// RSS is measurable) with `tar -cf - DIR | gzip` on the same tree (200 MiB,
// or $HARULES_BACKUP_BENCH_MIB).
func BenchmarkFilesBackup(b *testing.B) {
	for _, tool := range []string{"tar", "gzip", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s not found: install it (scripts/deps.d/backup.txt)", tool)
		}
	}
	tmp := b.TempDir()
	src := filepath.Join(tmp, "src")
	total := benchSize(b)
	generateTree(b, src, total)
	// Warm the page cache so neither side pays for cold reads.
	exec.Command("tar", "-cf", "/dev/null", src).Run()

	var ours, theirs time.Duration
	var oursBytes, theirsBytes, peakRSS int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		store := filepath.Join(tmp, fmt.Sprintf("store%d", i))
		child := exec.Command(os.Args[0], "-test.run=^TestHelperBenchBackup$", "-test.count=1")
		child.Env = append(os.Environ(), benchChildEnv+"="+src+"|"+store)
		start := time.Now()
		out, err := child.Output()
		ours += time.Since(start)
		if err != nil {
			b.Fatalf("backup child: %v\n%s", err, out)
		}
		var rec Record
		if err := json.Unmarshal(out[:strings.IndexByte(string(out), '\n')+1], &rec); err != nil {
			b.Fatalf("backup child output %q: %v", out, err)
		}
		oursBytes = rec.Bytes
		peakRSS = max(peakRSS, child.ProcessState.SysUsage().(*syscall.Rusage).Maxrss*1024)

		gz := filepath.Join(tmp, "tar.gz")
		start = time.Now()
		if out, err := exec.Command("sh", "-c", `tar -cf - -C "$1" . | gzip > "$2"`, "sh", src, gz).CombinedOutput(); err != nil {
			b.Fatalf("tar | gzip: %v\n%s", err, out)
		}
		theirs += time.Since(start)
		info, _ := os.Stat(gz)
		theirsBytes = info.Size()
		os.RemoveAll(store)
	}
	n := float64(b.N)
	mbps := func(d time.Duration) float64 { return float64(total) / (1 << 20) / (d.Seconds() / n) }
	b.ReportMetric(mbps(ours), "backup-MiB/s")
	b.ReportMetric(mbps(theirs), "tar|gzip-MiB/s")
	b.ReportMetric(theirs.Seconds()/ours.Seconds(), "speed-ratio")
	b.ReportMetric(float64(oursBytes)/float64(theirsBytes), "size-ratio")
	b.ReportMetric(float64(peakRSS)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(oursBytes)/(1<<20), "archive-MiB")
	b.ReportMetric(float64(theirsBytes)/(1<<20), "tar.gz-MiB")
}

// BenchmarkFilesRestore measures restoring a files backup of a generated
// tree (200 MiB, or $HARULES_BACKUP_BENCH_MIB) into an empty directory,
// every file checked against the manifest on the way; MiB/s counts the
// tree's bytes.
func BenchmarkFilesRestore(b *testing.B) {
	tmp := b.TempDir()
	src := filepath.Join(tmp, "src")
	total := benchSize(b)
	generateTree(b, src, total)
	store, _, err := Open(filepath.Join(tmp, "store"), WithLogger(quietLog()))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	r := &Runner{Store: store, Log: quietLog()}
	rec, err := r.Run(context.Background(), Job{Name: "bench", Source: &Files{Root: src}, Headroom: -1})
	if err != nil {
		b.Fatal(err)
	}
	os.RemoveAll(src) // room for the restores, and no page cache shared with them
	var took time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dest := filepath.Join(tmp, fmt.Sprintf("restore%d", i))
		start := time.Now()
		if err := store.RestoreFiles(context.Background(), "bench", rec.ID, dest, RestoreOptions{}); err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
		b.StopTimer()
		os.RemoveAll(dest)
		b.StartTimer()
	}
	b.ReportMetric(float64(total)/(1<<20)/(took.Seconds()/float64(b.N)), "restore-MiB/s")
	b.ReportMetric(float64(rec.Bytes)/(1<<20), "archive-MiB")
}
