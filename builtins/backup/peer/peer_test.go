package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/harules/harules/builtins/backup"
)

var secret = []byte("0123456789abcdef-cluster-secret")

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func mustCreds(t *testing.T, cluster string, secret []byte) *Credentials {
	t.Helper()
	c, err := NewCredentials(cluster, secret)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func openStore(t *testing.T, dir string) *backup.Store {
	t.Helper()
	st, _, err := backup.Open(dir, backup.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// receiver starts a server storing copies of job "data" in a fresh store.
func receiver(t *testing.T, creds *Credentials) (*Server, *backup.Store) {
	t.Helper()
	st := openStore(t, filepath.Join(t.TempDir(), "peer-store"))
	srv, err := Listen("127.0.0.1:0", ServerConfig{Credentials: creds, Logger: quiet(), IdleTimeout: 5 * time.Second,
		Stores: func(_ context.Context, job string) (*backup.Store, func(), error) {
			if job != "data" {
				return nil, nil, fmt.Errorf("this node keeps no copies of job %q", job)
			}
			return st, func() {}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, st
}

// localBackup makes a files backup of a small tree on the sending side.
func localBackup(t *testing.T, replicas ...backup.Replica) (*backup.Runner, backup.Job, backup.Record, error) {
	t.Helper()
	src := t.TempDir()
	for i := range 20 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i)), bytes.Repeat([]byte(fmt.Sprintf("line %d\n", i)), 5000+i*300), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := &backup.Runner{Store: openStore(t, filepath.Join(t.TempDir(), "store")), Node: "node1", Log: quiet()}
	job := backup.Job{Name: "data", Source: &backup.Files{Root: src}, Headroom: -1, Replicas: replicas}
	rec, err := r.Run(context.Background(), job)
	if !rec.Good() {
		t.Fatalf("local backup failed: %v", err)
	}
	return r, job, rec, err
}

// leftovers lists what the receiver's job directory holds besides the catalogue.
func leftovers(t *testing.T, st *backup.Store) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(st.Dir(), "data"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != "history.json" {
			out = append(out, e.Name())
		}
	}
	return out
}

// waitOutcome waits until the receiver's catalogue records id with want.
func waitOutcome(t *testing.T, st *backup.Store, id string, want backup.Outcome) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec, err := st.Get("data", id)
		if err == nil && rec.Outcome == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver's record of %s: %+v, %v; want outcome %s", id, rec, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCopyVerifiedOnArrivalAndCorruptionDetected(t *testing.T) {
	creds := mustCreds(t, "c1", secret)
	srv, peerStore := receiver(t, creds)
	rep := NewReplica("node2", srv.Addr().String(), "node1", "node2:"+peerStore.Dir(), creds)
	r, job, rec, err := localBackup(t, rep)
	if err != nil {
		t.Fatalf("backup with a peer copy: %v", err)
	}
	if !rec.Safe() || len(rec.Copies) != 1 || rec.Copies[0].Replica != "peer:node2" || !rec.Copies[0].Verified ||
		rec.Copies[0].Location != "node2:"+peerStore.Dir() {
		t.Fatalf("record after the run: safe %t, copies %+v", rec.Safe(), rec.Copies)
	}
	got, err := peerStore.Get("data", rec.ID)
	if err != nil || !got.Good() || got.SHA256 != rec.SHA256 || got.Node != "node1" {
		t.Fatalf("copy on the peer: %+v, %v", got, err)
	}
	if err := peerStore.Verify(context.Background(), "data", rec.ID); err != nil {
		t.Fatalf("the peer's own verify of the copy: %v", err)
	}
	// A second put of the same backup is a no-op on an intact copy.
	if err := rep.Put(context.Background(), rec, func(n string) (io.ReadCloser, error) { return r.Store.OpenFile("data", rec.ID, n) }); err != nil {
		t.Fatalf("second put: %v", err)
	}

	// Flip one byte in the middle of the copy's archive on the peer's disk.
	path := filepath.Join(peerStore.Dir(), "data", rec.ID, rec.DataFile())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	err = rep.Verify(context.Background(), "data", rec.ID)
	if !errors.Is(err, backup.ErrCorrupt) || !strings.Contains(err.Error(), "node2") {
		t.Fatalf("verify of a corrupted copy: %v, want ErrCorrupt naming node2", err)
	}
	after, verr := r.Verify(context.Background(), job, rec.ID)
	if verr == nil || after.Safe() || after.Copies[0].Verified || after.Copies[0].Error == "" {
		t.Fatalf("Runner.Verify with a corrupted peer copy: err %v, copies %+v, safe %t", verr, after.Copies, after.Safe())
	}
	if err := rep.Verify(context.Background(), "data", "20200101T000000.000Z-abcdef"); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("verify of a copy the peer never had: %v, want ErrNotFound", err)
	}
	// A new put repairs the copy; delete removes it.
	if err := rep.Put(context.Background(), rec, func(n string) (io.ReadCloser, error) { return r.Store.OpenFile("data", rec.ID, n) }); err != nil {
		t.Fatalf("put over a corrupted copy: %v", err)
	}
	if err := rep.Verify(context.Background(), "data", rec.ID); err != nil {
		t.Fatalf("verify after repair: %v", err)
	}
	if err := rep.Delete(context.Background(), "data", rec.ID); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, peerStore); len(left) != 0 {
		t.Fatalf("after delete the peer still holds %v", left)
	}
	if err := rep.Delete(context.Background(), "data", rec.ID); err != nil {
		t.Fatalf("deleting a missing copy: %v", err)
	}
}

func TestWrongKeyRejected(t *testing.T) {
	good := mustCreds(t, "c1", secret)
	srv, peerStore := receiver(t, good)
	for name, creds := range map[string]*Credentials{
		"other secret":  mustCreds(t, "c1", []byte("another-secret-of-32-bytes-xxxxx")),
		"other cluster": mustCreds(t, "c2", secret),
	} {
		rep := NewReplica("node2", srv.Addr().String(), "node1", "", creds)
		_, _, rec, err := localBackup(t, rep)
		if !errors.Is(err, backup.ErrCopyFailed) || rec.Safe() || rec.Copies[0].Verified {
			t.Fatalf("%s: backup run: err %v, copies %+v; want the copy refused", name, err, rec.Copies)
		}
		if err := rep.Delete(context.Background(), "data", rec.ID); err == nil {
			t.Fatalf("%s: delete accepted", name)
		}
	}
	if left := leftovers(t, peerStore); len(left) != 0 {
		t.Fatalf("the receiver stored %v from senders without the secret", left)
	}
	// A receiver without the secret is refused by the sender: it would
	// otherwise collect the backups.
	impostor, _ := receiver(t, mustCreds(t, "c1", []byte("impostor-secret-0123456789abcdef")))
	rep := NewReplica("node2", impostor.Addr().String(), "node1", "", good)
	if err := rep.Verify(context.Background(), "data", "x"); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("sender talked to a receiver without the secret: %v", err)
	}
	if _, err := NewCredentials("c1", []byte("short")); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
}

// recorder forwards TCP connections to target and keeps the bytes each
// client sent.
type recorder struct {
	ln     net.Listener
	mu     sync.Mutex
	client [][]byte
}

func record(t *testing.T, target string) *recorder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc := &recorder{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go rc.forward(c, target)
		}
	}()
	return rc
}

func (rc *recorder) forward(c net.Conn, target string) {
	defer c.Close()
	s, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer s.Close()
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(c, s); c.Close(); close(done) }()
	io.Copy(io.MultiWriter(s, &buf), c)
	<-done
	rc.mu.Lock()
	rc.client = append(rc.client, buf.Bytes())
	rc.mu.Unlock()
}

func TestReplayedRequestRejected(t *testing.T) {
	creds := mustCreds(t, "c1", secret)
	srv, peerStore := receiver(t, creds)
	direct := NewReplica("node2", srv.Addr().String(), "node1", "", creds)
	r, _, rec, err := localBackup(t, direct)
	if err != nil {
		t.Fatal(err)
	}
	// An eavesdropper records the bytes of a legitimate delete...
	rc := record(t, srv.Addr().String())
	if err := NewReplica("node2", rc.ln.Addr().String(), "node1", "", creds).Delete(context.Background(), "data", rec.ID); err != nil {
		t.Fatalf("delete through the recorder: %v", err)
	}
	if _, err := peerStore.Get("data", rec.ID); err != nil {
		t.Fatal(err)
	}
	var recorded []byte
	deadline := time.Now().Add(5 * time.Second)
	for recorded == nil && time.Now().Before(deadline) {
		rc.mu.Lock()
		if len(rc.client) > 0 {
			recorded = rc.client[0]
		}
		rc.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	if len(recorded) == 0 {
		t.Fatal("the recorder saw no bytes")
	}
	// ...the copy is put back, and the recording is played to the receiver.
	open := func(n string) (io.ReadCloser, error) { return r.Store.OpenFile("data", rec.ID, n) }
	if err := direct.Put(context.Background(), rec, open); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(recorded)
	io.Copy(io.Discard, c) // until the receiver hangs up
	c.Close()
	if err := direct.Verify(context.Background(), "data", rec.ID); err != nil {
		t.Fatalf("the replayed delete removed the copy: %v", err)
	}
}

// truncated yields the first n bytes of r, then EOF.
func truncated(rc io.ReadCloser, n int64) io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, n), rc}
}

// flipped corrupts the byte at offset off of the stream.
type flipped struct {
	io.ReadCloser
	off, pos int64
}

func (f *flipped) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if f.off >= f.pos && f.off < f.pos+int64(n) {
		p[f.off-f.pos] ^= 0x01
	}
	f.pos += int64(n)
	return n, err
}

func TestBrokenStreamsLeaveNothing(t *testing.T) {
	creds := mustCreds(t, "c1", secret)
	srv, peerStore := receiver(t, creds)
	rep := NewReplica("node2", srv.Addr().String(), "node1", "", creds)
	r, _, rec, _ := localBackup(t)
	if rec.Bytes < 1000 {
		t.Fatalf("backup of %d bytes is too small for this test", rec.Bytes)
	}
	local := func(n string) (io.ReadCloser, error) { return r.Store.OpenFile("data", rec.ID, n) }

	// The sender dies half-way through the archive.
	err := rep.Put(context.Background(), rec, func(n string) (io.ReadCloser, error) {
		f, err := local(n)
		if err != nil || n != rec.DataFile() {
			return f, err
		}
		return truncated(f, rec.Bytes/2), nil
	})
	if err == nil {
		t.Fatal("a truncated stream was accepted")
	}
	waitOutcome(t, peerStore, rec.ID, backup.OutcomeFailed)
	if left := leftovers(t, peerStore); len(left) != 0 {
		t.Fatalf("a truncated stream left %v on the receiver", left)
	}

	// One bit flipped in transit (or read wrong from the sender's disk).
	err = rep.Put(context.Background(), rec, func(n string) (io.ReadCloser, error) {
		f, err := local(n)
		if err != nil || n != rec.DataFile() {
			return f, err
		}
		return &flipped{ReadCloser: f, off: rec.Bytes / 3}, nil
	})
	if !errors.Is(err, backup.ErrCorrupt) {
		t.Fatalf("a corrupted stream: %v, want ErrCorrupt", err)
	}
	if left := leftovers(t, peerStore); len(left) != 0 {
		t.Fatalf("a corrupted stream left %v on the receiver", left)
	}
	if _, err := peerStore.Get("data", rec.ID); err != nil {
		t.Fatal(err)
	}
	if err := rep.Verify(context.Background(), "data", rec.ID); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("verify after failed puts: %v, want ErrNotFound", err)
	}

	// A record whose checksum does not match the data it came with.
	bad := rec
	bad.Files = append([]backup.StoredFile(nil), rec.Files...)
	bad.Files[0].SHA256 = strings.Repeat("0", 64)
	if err := rep.Put(context.Background(), bad, local); !errors.Is(err, backup.ErrCorrupt) {
		t.Fatalf("data not matching the record: %v, want ErrCorrupt", err)
	}
	// A job the receiver keeps no copies of is refused before any data moves.
	other := rec
	other.Job = "other"
	if err := rep.Put(context.Background(), other, local); err == nil || !strings.Contains(err.Error(), "no copies of job") {
		t.Fatalf("put of an unknown job: %v", err)
	}
	if left := leftovers(t, peerStore); len(left) != 0 {
		t.Fatalf("receiver holds %v", left)
	}
	// The intact stream still goes through.
	if err := rep.Put(context.Background(), rec, local); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPeerPut measures a peer copy over loopback TLS: send, store,
// fsync and read back for the checksum on the receiver.
func BenchmarkPeerPut(b *testing.B) {
	creds, err := NewCredentials("c1", secret)
	if err != nil {
		b.Fatal(err)
	}
	tmp := b.TempDir()
	src, _, err := backup.Open(filepath.Join(tmp, "src"), backup.WithLogger(quiet()))
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	const size = 256 << 20
	r := &backup.Runner{Store: src, Log: quiet()}
	rec, err := r.Run(context.Background(), backup.Job{Name: "data", Source: &backup.Exec{Command: backup.Command{Path: "head", Args: []string{"-c", fmt.Sprint(size), "/dev/urandom"}}}, Headroom: -1})
	if err != nil {
		b.Fatal(err)
	}
	open := func(n string) (io.ReadCloser, error) { return src.OpenFile("data", rec.ID, n) }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst, _, err := backup.Open(filepath.Join(tmp, fmt.Sprintf("dst%d", i)), backup.WithLogger(quiet()))
		if err != nil {
			b.Fatal(err)
		}
		srv, err := Listen("127.0.0.1:0", ServerConfig{Credentials: creds, Logger: quiet(),
			Stores: func(context.Context, string) (*backup.Store, func(), error) { return dst, func() {}, nil }})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := NewReplica("n2", srv.Addr().String(), "n1", "", creds).Put(context.Background(), rec, open); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		srv.Close()
		dst.Close()
		os.RemoveAll(dst.Dir())
		b.StartTimer()
	}
	b.ReportMetric(float64(rec.Bytes)/(1<<20)/(b.Elapsed().Seconds()/float64(b.N)), "put-MiB/s")
}
