package backup

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/klauspost/pgzip"
)

// defaultLevel is gzip's own default: the archive is about as small as
// `tar | gzip` makes it, while pgzip spreads the work over the cores.
const defaultLevel = 6

func newGzipWriter(w io.Writer, level int) io.WriteCloser {
	if level < pgzip.BestSpeed || level > pgzip.BestCompression {
		level = defaultLevel
	}
	zw, _ := pgzip.NewWriterLevel(w, level) // the level is valid
	// 1 MiB blocks, two per core in flight: bounded memory (~ a few MiB per core).
	_ = zw.SetConcurrency(1<<20, 2*runtime.GOMAXPROCS(0))
	return zw
}

// Files is a source archiving a directory tree as tar+gzip (PAX format,
// readable by GNU tar), with a manifest holding a SHA-256 per regular file.
// Regular files, directories, symlinks, fifos and device nodes are kept
// with permissions, owners and nanosecond mtimes; sparse files are stored
// as GNU PAX 1.0 sparse entries (holes are neither read nor stored).
// Hard links within the tree stay hard links; sockets are skipped.
type Files struct {
	Root string
	// Level is the gzip level 1..9; 0 means 6.
	Level int
	// Exclude, when set, skips entries (and whole directories) it returns true for.
	Exclude func(rel string, d fs.DirEntry) bool
	Log     *slog.Logger
}

var (
	_ Source    = (*Files)(nil)
	_ Estimator = (*Files)(nil)
)

// Kind implements Source.
func (f *Files) Kind() string { return KindFiles }

// EstimateSize implements Estimator: the allocated size of the tree, an
// upper bound for the compressed archive of ordinary data.
func (f *Files) EstimateSize(ctx context.Context) (int64, error) {
	var total int64
	err := filepath.WalkDir(f.Root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		total += 1024 // header overhead
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return nil // vanished: ignore for an estimate
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				total += min(st.Blocks*512, info.Size())
			} else {
				total += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("estimate %s: %w", f.Root, err)
	}
	return total, nil
}

// Backup implements Source.
func (f *Files) Backup(ctx context.Context, out Output) (Summary, error) {
	sum := Summary{Compression: "gzip", HasManifest: true}
	st, err := os.Stat(f.Root)
	if err != nil {
		return sum, fmt.Errorf("files source: %w", err)
	}
	if !st.IsDir() {
		return sum, fmt.Errorf("files source: %s is not a directory", f.Root)
	}
	log := f.Log
	if log == nil {
		log = slog.Default()
	}
	zw := newGzipWriter(out.Data, f.Level)
	a := &archiver{
		tw:    tar.NewWriter(zw),
		raw:   zw,
		mw:    newManifestWriter(out.Manifest),
		buf:   make([]byte, 256<<10),
		log:   log,
		hash:  sha256.New(),
		links: map[inode]string{},
	}
	walkErr := filepath.WalkDir(f.Root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != f.Root {
				return nil // removed while we walked: a live tree
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(f.Root, path)
		if err != nil {
			return err
		}
		if rel != "." && f.Exclude != nil && f.Exclude(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		return a.add(path, rel)
	})
	sum.Entries = a.entries
	if walkErr != nil {
		return sum, fmt.Errorf("archive %s: %w", f.Root, walkErr)
	}
	if err := a.tw.Close(); err != nil {
		return sum, fmt.Errorf("archive %s: %w", f.Root, err)
	}
	if err := zw.Close(); err != nil {
		return sum, fmt.Errorf("archive %s: compress: %w", f.Root, err)
	}
	if err := a.mw.flush(); err != nil {
		return sum, fmt.Errorf("archive %s: %w", f.Root, err)
	}
	return sum, nil
}

type archiver struct {
	tw      *tar.Writer
	raw     io.Writer // under tw, for entries archive/tar cannot write (sparse)
	mw      *manifestWriter
	buf     []byte
	log     *slog.Logger
	hash    hash.Hash
	entries int64
	links   map[inode]string // first archived name of files with several links
}

type inode struct{ dev, ino uint64 }

func modeBits(m fs.FileMode) uint32 {
	bits := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	return bits
}

func (a *archiver) add(path, rel string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	name := filepath.ToSlash(rel)
	if info.IsDir() {
		if name == "." {
			name = "./"
		} else {
			name += "/"
		}
	}
	entry := ManifestEntry{Mode: modeBits(info.Mode()), MTimeNS: info.ModTime().UnixNano()}
	entry.setPath(name)
	var link string
	switch t := info.Mode().Type(); {
	case t&fs.ModeSocket != 0:
		a.log.Warn("backup: skipping socket", "path", path)
		return nil
	case t&fs.ModeSymlink != 0:
		if link, err = os.Readlink(path); err != nil {
			return err
		}
		entry.Type = typeSymlink
		entry.setLink(link)
	case t.IsDir():
		entry.Type = typeDir
	case t&fs.ModeNamedPipe != 0:
		entry.Type = typeFifo
	case t&fs.ModeCharDevice != 0:
		entry.Type = typeChar
	case t&fs.ModeDevice != 0:
		entry.Type = typeBlock
	case t.IsRegular():
		entry.Type = typeFile
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			key := inode{st.Dev, st.Ino}
			if first, seen := a.links[key]; seen {
				entry.Type = typeHard
				entry.setLink(first)
				link = first
			} else {
				a.links[key] = name
			}
		}
	default:
		a.log.Warn("backup: skipping file of unknown type", "path", path, "mode", info.Mode())
		return nil
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	hdr.Format = tar.FormatPAX // keeps nanosecond mtimes and any name
	hdr.ModTime = info.ModTime()
	hdr.AccessTime, hdr.ChangeTime = timeZero, timeZero
	if entry.Type == typeHard {
		hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, link, 0
	}
	if entry.Type == typeFile {
		if err := a.addFile(path, hdr, &entry); err != nil {
			return err
		}
	} else if err := a.tw.WriteHeader(hdr); err != nil {
		return err
	}
	a.entries++
	return a.mw.add(entry)
}

func openNoAtime(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOATIME, 0)
	if errors.Is(err, fs.ErrPermission) { // O_NOATIME needs ownership or CAP_FOWNER
		f, err = os.Open(path)
	}
	return f, err
}

func (a *archiver) addFile(path string, hdr *tar.Header, entry *ManifestEntry) error {
	f, err := openNoAtime(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	hdr.Size = size
	entry.Size = size
	a.hash.Reset()
	if st, ok := info.Sys().(*syscall.Stat_t); ok && size >= 64<<10 && st.Blocks*512 < size {
		extents, err := dataExtents(f, size)
		if err == nil {
			entry.Sparse = true
			return a.addSparse(f, hdr, entry, extents)
		}
		a.log.Debug("backup: no sparse map, storing in full", "path", path, "err", err)
	}
	if err := a.tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.CopyBuffer(io.MultiWriter(a.tw, a.hash), io.LimitReader(f, size), a.buf)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if n < size { // shrank while read: keep the archive well-formed
		a.log.Warn("backup: file shrank while being read", "path", path, "want", size, "got", n)
		entry.Changed = true
		if err := a.zeros(a.tw, size-n); err != nil {
			return err
		}
	}
	entry.SHA256 = hex.EncodeToString(a.hash.Sum(nil))
	return nil
}

// zeros writes n zero bytes to w and to the file hash.
func (a *archiver) zeros(w io.Writer, n int64) error {
	z := zeroBlock[:]
	for n > 0 {
		c := z[:min(int64(len(z)), n)]
		if w != nil {
			if _, err := w.Write(c); err != nil {
				return err
			}
		}
		a.hash.Write(c)
		n -= int64(len(c))
	}
	return nil
}

var zeroBlock [256 << 10]byte
