package probes

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// DiskSpaceConfig configures a free-space check.
type DiskSpaceConfig struct {
	// Path is any path on the filesystem to check.
	Path string
	// MinFreePercent is the minimum share of blocks available to unprivileged
	// users (0 disables the check).
	MinFreePercent float64
	// MinFreeInodesPercent is the minimum share of free inodes (0 disables
	// it; filesystems without an inode limit always pass).
	MinFreeInodesPercent float64
}

// DiskSpaceCheck checks free space and inodes with statfs(2). Value is the
// free space percent; Values holds free_percent, free_inodes_percent,
// free_bytes and total_bytes.
type DiskSpaceCheck struct {
	cfg DiskSpaceConfig
}

var _ Check = (*DiskSpaceCheck)(nil)

// NewDiskSpace validates cfg and returns the check.
func NewDiskSpace(cfg DiskSpaceConfig) (*DiskSpaceCheck, error) {
	if !filepath.IsAbs(cfg.Path) {
		return nil, fmt.Errorf("disk space check: path %q must be absolute", cfg.Path)
	}
	for name, v := range map[string]float64{"min free percent": cfg.MinFreePercent, "min free inodes percent": cfg.MinFreeInodesPercent} {
		if v < 0 || v > 100 {
			return nil, fmt.Errorf("disk space check: %s %g must be within 0..100", name, v)
		}
	}
	return &DiskSpaceCheck{cfg: cfg}, nil
}

// Run calls statfs. statfs on a hung network filesystem cannot be
// interrupted; the Runner abandons such a run at its timeout.
func (c *DiskSpaceCheck) Run(ctx context.Context) Result {
	start := time.Now()
	var st unix.Statfs_t
	if err := unix.Statfs(c.cfg.Path, &st); err != nil {
		return failure(start, "statfs "+c.cfg.Path, err)
	}
	if r, done := ctxErr(ctx, start); done {
		return r
	}
	bsize := float64(st.Bsize)
	freePct, inodesPct := 100.0, 100.0
	if st.Blocks > 0 {
		freePct = 100 * float64(st.Bavail) / float64(st.Blocks)
	}
	if st.Files > 0 {
		inodesPct = 100 * float64(st.Ffree) / float64(st.Files)
	}
	res := Result{
		Value: freePct,
		Values: map[string]float64{
			"free_percent":        freePct,
			"free_inodes_percent": inodesPct,
			"free_bytes":          float64(st.Bavail) * bsize,
			"total_bytes":         float64(st.Blocks) * bsize,
		},
		Text:    fmt.Sprintf("%.1f%% space, %.1f%% inodes free on %s", freePct, inodesPct, c.cfg.Path),
		Latency: time.Since(start),
	}
	switch {
	case freePct < c.cfg.MinFreePercent:
		res.Err = fmt.Sprintf("free space %.1f%% below minimum %g%% on %s", freePct, c.cfg.MinFreePercent, c.cfg.Path)
	case inodesPct < c.cfg.MinFreeInodesPercent:
		res.Err = fmt.Sprintf("free inodes %.1f%% below minimum %g%% on %s", inodesPct, c.cfg.MinFreeInodesPercent, c.cfg.Path)
	default:
		res.OK = true
	}
	return res
}

// WritableCheck proves a filesystem accepts writes: it writes a small file
// in Dir, fsyncs it, reads it back and removes it. It detects read-only
// remounts (after I/O errors, ext4 errors=remount-ro) and, through the
// deadline, hung storage.
type WritableCheck struct {
	dir string
}

var _ Check = (*WritableCheck)(nil)

// NewWritable returns a check that writes into dir.
func NewWritable(dir string) (*WritableCheck, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("writable check: directory %q must be absolute", dir)
	}
	return &WritableCheck{dir: dir}, nil
}

// Run performs the write; the I/O runs in its own goroutine so the check
// returns at the deadline even when the filesystem hangs (the goroutine
// finishes, or stays blocked, on its own).
func (c *WritableCheck) Run(ctx context.Context) Result {
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- c.writeReadBack() }()
	select {
	case err := <-done:
		lat := time.Since(start)
		if err != nil {
			return Result{Err: err.Error(), Latency: lat}
		}
		return Result{OK: true, Value: ms(lat), Latency: lat, Text: c.dir + " is writable"}
	case <-ctx.Done():
		return failure(start, "write to "+c.dir+" did not finish", context.Cause(ctx))
	}
}

func (c *WritableCheck) writeReadBack() (err error) {
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	want := []byte("harules write probe " + hex.EncodeToString(token) + "\n")
	path := filepath.Join(c.dir, ".harules-probe-"+hex.EncodeToString(token[:6]))

	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		if errors.Is(err, unix.EROFS) {
			return fmt.Errorf("%s is read-only: %w", c.dir, err)
		}
		return fmt.Errorf("create probe file: %w", err)
	}
	defer func() {
		if rerr := os.Remove(path); rerr != nil && err == nil {
			err = fmt.Errorf("remove probe file: %w", rerr)
		}
	}()
	if _, err := f.Write(want); err != nil {
		f.Close()
		return fmt.Errorf("write probe file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync probe file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close probe file: %w", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read back probe file: %w", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("read back %d bytes that differ from the %d written", len(got), len(want))
	}
	return nil
}
