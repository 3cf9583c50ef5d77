package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"golang.org/x/sys/unix"
)

// Errors of verify and restore.
var (
	ErrCorrupt        = errors.New("backup is corrupt")
	ErrUnsafePath     = errors.New("archive entry escapes the restore directory")
	ErrTargetNotEmpty = errors.New("restore directory is not empty")
)

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

func entryType(flag byte) string {
	switch flag {
	case tar.TypeReg, tar.TypeRegA:
		return typeFile
	case tar.TypeDir:
		return typeDir
	case tar.TypeSymlink:
		return typeSymlink
	case tar.TypeFifo:
		return typeFifo
	case tar.TypeChar:
		return typeChar
	case tar.TypeBlock:
		return typeBlock
	case tar.TypeLink:
		return typeHard
	}
	return fmt.Sprintf("tar type %q", flag)
}

func isSparseEntry(hdr *tar.Header) bool { return hdr.PAXRecords["GNU.sparse.major"] == "1" }

// entryFunc handles one archive entry; content is the file's data (regular
// files only) and need not be read to the end.
type entryFunc func(hdr *tar.Header, content io.Reader) error

// walkArchive reads a tar+gzip stream, checks every entry against the
// manifest (when one is given) and hands it to fn. It returns the SHA-256
// of the compressed stream as read, so callers compare it with the record.
func walkArchive(ctx context.Context, compressed io.Reader, manifest io.Reader, fn entryFunc) (sum string, entries int64, err error) {
	whole := sha256.New()
	raw := io.TeeReader(compressed, whole)
	zr, err := gzip.NewReader(raw)
	if err != nil {
		return "", 0, corruptf("gzip header: %v", err)
	}
	zr.Multistream(true)
	tr := tar.NewReader(zr)
	var mr *manifestReader
	if manifest != nil {
		mr = newManifestReader(manifest)
	}
	fileHash := sha256.New()
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return "", entries, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", entries, corruptf("entry %d: %v", entries+1, err)
		}
		entries++
		var me ManifestEntry
		if mr != nil {
			if me, err = mr.next(); err == io.EOF {
				return "", entries, corruptf("archive entry %q is not in the manifest", hdr.Name)
			} else if err != nil {
				return "", entries, corruptf("%v", err)
			}
			if err := matchManifest(hdr, me); err != nil {
				return "", entries, err
			}
		}
		var content io.Reader
		if hdr.Typeflag == tar.TypeReg {
			fileHash.Reset()
			content = io.TeeReader(tr, fileHash)
		}
		if err := fn(hdr, content); err != nil {
			return "", entries, err
		}
		if content == nil {
			continue
		}
		// plainDiscard hides io.Discard's ReadFrom, which would read in 8 KiB steps.
		if _, err := io.CopyBuffer(plainDiscard{}, content, buf); err != nil {
			return "", entries, corruptf("%q: %v", hdr.Name, err)
		}
		if got := hex.EncodeToString(fileHash.Sum(nil)); mr != nil && got != me.SHA256 {
			return "", entries, corruptf("%q: content SHA-256 %s, manifest says %s", hdr.Name, got, me.SHA256)
		}
	}
	if mr != nil {
		if me, err := mr.next(); err == nil {
			return "", entries, corruptf("manifest entry %q is missing from the archive", me.Name())
		} else if err != io.EOF {
			return "", entries, corruptf("%v", err)
		}
	}
	// Read the gzip stream to its end (checks its CRC), then anything after it.
	if _, err := io.CopyBuffer(plainDiscard{}, zr, buf); err != nil {
		return "", entries, corruptf("after the archive: %v", err)
	}
	if _, err := io.CopyBuffer(plainDiscard{}, raw, buf); err != nil {
		return "", entries, err
	}
	return hex.EncodeToString(whole.Sum(nil)), entries, nil
}

func matchManifest(hdr *tar.Header, me ManifestEntry) error {
	if hdr.Name != me.Name() {
		return corruptf("archive entry %q, manifest says %q", hdr.Name, me.Name())
	}
	if t := entryType(hdr.Typeflag); t != me.Type {
		return corruptf("%q: archive type %s, manifest says %s", hdr.Name, t, me.Type)
	}
	if me.Type == typeFile && hdr.Size != me.Size {
		return corruptf("%q: archive size %d, manifest says %d", hdr.Name, hdr.Size, me.Size)
	}
	if (me.Type == typeSymlink || me.Type == typeHard) && hdr.Linkname != me.Target() {
		return corruptf("%q: archive link %q, manifest says %q", hdr.Name, hdr.Linkname, me.Target())
	}
	if hdr.ModTime.UnixNano() != me.MTimeNS || uint32(hdr.Mode)&0o7777 != me.Mode {
		return corruptf("%q: archive mode/mtime differ from the manifest", hdr.Name)
	}
	return nil
}

// RestoreOptions tune a files restore.
type RestoreOptions struct {
	// Owners restores uid/gid; it is on when running as root unless SkipOwners.
	SkipOwners bool
}

// extractArchive restores a tar+gzip stream into dest, which must be
// missing or empty. Every path stays inside dest: names with ".." or
// absolute names are refused, and os.Root refuses to follow symlinks out.
func extractArchive(ctx context.Context, compressed, manifest io.Reader, dest string, opts RestoreOptions) (string, error) {
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	ents, err := os.ReadDir(dest)
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	if len(ents) > 0 {
		return "", fmt.Errorf("restore into %s: %w", dest, ErrTargetNotEmpty)
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	defer root.Close()
	x := &extractor{root: root, owners: os.Geteuid() == 0 && !opts.SkipOwners, buf: make([]byte, 256<<10)}
	sum, _, err := walkArchive(ctx, compressed, manifest, x.entry)
	if err != nil {
		return "", fmt.Errorf("restore into %s: %w", dest, err)
	}
	// Directory modes and times last, deepest first: adding children changes
	// a directory's mtime and a read-only mode would block them.
	for _, d := range slices.Backward(x.dirs) {
		if err := x.root.Chmod(d.name, fileMode(d.mode)); err != nil {
			return "", fmt.Errorf("restore: %w", err)
		}
		if err := x.root.Chtimes(d.name, time.Time{}, d.mtime); err != nil {
			return "", fmt.Errorf("restore: %w", err)
		}
	}
	return sum, nil
}

type dirAttrs struct {
	name  string
	mode  int64
	mtime time.Time
}

type extractor struct {
	root   *os.Root
	owners bool
	buf    []byte
	dirs   []dirAttrs
}

func fileMode(m int64) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

func (x *extractor) entry(hdr *tar.Header, content io.Reader) error {
	name := strings.TrimSuffix(hdr.Name, "/")
	if name == "" || !filepath.IsLocal(name) {
		return fmt.Errorf("%q: %w", hdr.Name, ErrUnsafePath)
	}
	name = filepath.Clean(name)
	if parent := filepath.Dir(name); parent != "." {
		if err := x.root.MkdirAll(parent, 0o700); err != nil {
			return fmt.Errorf("%q: %w", hdr.Name, wrapEscape(err))
		}
	}
	var err error
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = x.dir(name, hdr)
	case tar.TypeReg:
		err = x.file(name, hdr, content)
	case tar.TypeSymlink:
		err = x.symlink(name, hdr)
	case tar.TypeLink:
		target := strings.TrimSuffix(hdr.Linkname, "/")
		if target == "" || !filepath.IsLocal(target) {
			return fmt.Errorf("%q: hard link to %q: %w", hdr.Name, hdr.Linkname, ErrUnsafePath)
		}
		err = x.root.Link(filepath.Clean(target), name)
	case tar.TypeFifo, tar.TypeChar, tar.TypeBlock:
		err = x.node(name, hdr)
	default:
		return fmt.Errorf("%q: unsupported entry type %q", hdr.Name, hdr.Typeflag)
	}
	if err != nil {
		return fmt.Errorf("%q: %w", hdr.Name, wrapEscape(err))
	}
	return nil
}

// wrapEscape marks os.Root's "path escapes from parent" as ErrUnsafePath.
func wrapEscape(err error) error {
	if err != nil && strings.Contains(err.Error(), "escapes from parent") {
		return fmt.Errorf("%w: %w", ErrUnsafePath, err)
	}
	return err
}

func (x *extractor) chown(name string, hdr *tar.Header) error {
	if !x.owners {
		return nil
	}
	return x.root.Lchown(name, hdr.Uid, hdr.Gid)
}

func (x *extractor) dir(name string, hdr *tar.Header) error {
	if name != "." {
		if err := x.root.Mkdir(name, 0o700); err != nil {
			info, lerr := x.root.Lstat(name)
			if lerr != nil || !info.IsDir() {
				return err
			}
		}
	}
	x.dirs = append(x.dirs, dirAttrs{name: name, mode: hdr.Mode, mtime: hdr.ModTime})
	return x.chown(name, hdr)
}

func (x *extractor) file(name string, hdr *tar.Header, content io.Reader) error {
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	var w io.Writer = f
	if isSparseEntry(hdr) {
		w = &sparseWriter{f: f}
	}
	if _, err := io.CopyBuffer(w, content, x.buf); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(hdr.Size); err != nil { // sets the size after a trailing hole
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := x.chown(name, hdr); err != nil {
		return err
	}
	// chmod after chown: chown clears setuid/setgid.
	if err := x.root.Chmod(name, fileMode(hdr.Mode)); err != nil {
		return err
	}
	return x.root.Chtimes(name, time.Time{}, hdr.ModTime)
}

func (x *extractor) symlink(name string, hdr *tar.Header) error {
	if err := x.root.Symlink(hdr.Linkname, name); err != nil {
		return err
	}
	if err := x.chown(name, hdr); err != nil {
		return err
	}
	return x.atParent(name, func(dirfd int, base string) error {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		return unix.UtimesNanoAt(dirfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}

func (x *extractor) node(name string, hdr *tar.Header) error {
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	err := x.atParent(name, func(dirfd int, base string) error {
		return unix.Mknodat(dirfd, base, mode, int(dev))
	})
	if err != nil {
		return err
	}
	if err := x.chown(name, hdr); err != nil {
		return err
	}
	if err := x.root.Chmod(name, fileMode(hdr.Mode)); err != nil {
		return err
	}
	return x.root.Chtimes(name, time.Time{}, hdr.ModTime)
}

// atParent runs fn with a descriptor of name's parent, opened inside the root.
func (x *extractor) atParent(name string, fn func(dirfd int, base string) error) error {
	d, err := x.root.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(int(d.Fd()), filepath.Base(name))
}

// sparseWriter writes a file sequentially, skipping all-zero 4 KiB blocks
// so that holes stay holes; the caller truncates to the final size.
type sparseWriter struct {
	f   *os.File
	off int64
}

const sparseBlock = 4096

func (w *sparseWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		// Collect a run of blocks that are all zero or all non-zero.
		first := min(len(p), sparseBlock-int(w.off%sparseBlock))
		zero := isZero(p[:first])
		n := first
		for n < len(p) {
			c := min(len(p)-n, sparseBlock)
			if isZero(p[n:n+c]) != zero {
				break
			}
			n += c
		}
		if !zero {
			if _, err := w.f.WriteAt(p[:n], w.off); err != nil {
				return total - len(p), err
			}
		}
		w.off += int64(n)
		p = p[n:]
	}
	return total, nil
}

func isZero(b []byte) bool {
	return bytes.Equal(b, zeroBlock[:len(b)])
}

type plainDiscard struct{}

func (plainDiscard) Write(p []byte) (int, error) { return len(p), nil }
