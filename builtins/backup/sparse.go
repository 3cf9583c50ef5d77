package backup

import (
	"archive/tar"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

var timeZero time.Time

type extent struct{ off, n int64 }

// dataExtents lists the data regions of f with SEEK_DATA/SEEK_HOLE.
func dataExtents(f *os.File, size int64) ([]extent, error) {
	fd := int(f.Fd())
	var ex []extent
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole remains
		}
		if err != nil {
			return nil, fmt.Errorf("seek data: %w", err)
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole: %w", err)
		}
		hole = min(hole, size)
		ex = append(ex, extent{data, hole - data})
		off = hole
	}
	return ex, nil
}

// paxRecord formats one "LEN key=value\n" record; LEN counts itself.
func paxRecord(k, v string) string {
	body := " " + k + "=" + v + "\n"
	n := len(body) + len(strconv.Itoa(len(body)))
	if len(strconv.Itoa(n)) != len(strconv.Itoa(len(body))) {
		n = len(body) + len(strconv.Itoa(n))
	}
	return strconv.Itoa(n) + body
}

// ustarBlock builds a 512-byte ustar header. Values that do not fit are
// written as 0; the PAX records that precede it carry the real ones.
func ustarBlock(name string, typeflag byte, mode, uid, gid, size, mtime int64, uname, gname string) []byte {
	b := make([]byte, 512)
	octal := func(field []byte, v int64) {
		digits := len(field) - 1
		s := strconv.FormatInt(v, 8)
		if v < 0 || len(s) > digits {
			s = "0"
		}
		copy(field, strings.Repeat("0", digits-len(s))+s)
	}
	copy(b[0:100], name)
	octal(b[100:108], mode)
	octal(b[108:116], uid)
	octal(b[116:124], gid)
	octal(b[124:136], size)
	octal(b[136:148], mtime)
	b[156] = typeflag
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	if len(uname) <= 32 {
		copy(b[265:297], uname)
	}
	if len(gname) <= 32 {
		copy(b[297:329], gname)
	}
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func padTo512(n int64) int64 { return (512 - n%512) % 512 }

// addSparse writes a GNU PAX 1.0 sparse entry (as GNU tar does with
// --sparse), which archive/tar reads but cannot write: a PAX header with
// the real name and size, a ustar header, then the sparse map and the data
// regions. Holes are not read; the manifest hash covers the logical content.
func (a *archiver) addSparse(f *os.File, hdr *tar.Header, entry *ManifestEntry, extents []extent) error {
	size := hdr.Size
	var m strings.Builder
	mapped := append(extents, extent{size, 0}) // GNU tar ends the map at the real size
	fmt.Fprintf(&m, "%d\n", len(mapped))
	for _, e := range mapped {
		fmt.Fprintf(&m, "%d\n%d\n", e.off, e.n)
	}
	mapLen := int64(m.Len())
	m.WriteString(strings.Repeat("\x00", int(padTo512(mapLen))))
	physical := int64(m.Len())
	for _, e := range extents {
		physical += e.n
	}

	mt := hdr.ModTime
	recs := paxRecord("GNU.sparse.major", "1") +
		paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", hdr.Name) +
		paxRecord("GNU.sparse.realsize", strconv.FormatInt(size, 10)) +
		paxRecord("size", strconv.FormatInt(physical, 10)) +
		paxRecord("mtime", fmt.Sprintf("%d.%09d", mt.Unix(), mt.Nanosecond())) +
		paxRecord("uid", strconv.Itoa(hdr.Uid)) +
		paxRecord("gid", strconv.Itoa(hdr.Gid))
	if hdr.Uname != "" {
		recs += paxRecord("uname", hdr.Uname)
	}
	if hdr.Gname != "" {
		recs += paxRecord("gname", hdr.Gname)
	}

	// Finish the previous entry's padding before writing around tar.Writer.
	if err := a.tw.Flush(); err != nil {
		return err
	}
	var head strings.Builder
	head.Write(ustarBlock("./PaxHeaders/sparse", tar.TypeXHeader, 0o644, 0, 0, int64(len(recs)), mt.Unix(), "", ""))
	head.WriteString(recs)
	head.WriteString(strings.Repeat("\x00", int(padTo512(int64(len(recs))))))
	head.Write(ustarBlock("./GNUSparseFile.0/sparse", tar.TypeReg, hdr.Mode, int64(hdr.Uid), int64(hdr.Gid),
		physical, mt.Unix(), hdr.Uname, hdr.Gname))
	head.WriteString(m.String())
	if _, err := io.WriteString(a.raw, head.String()); err != nil {
		return err
	}

	var pos, written int64 // logical position, physical data bytes written
	for _, e := range extents {
		if err := a.zeros(nil, e.off-pos); err != nil {
			return err
		}
		n, err := io.CopyBuffer(io.MultiWriter(a.raw, a.hash), io.NewSectionReader(f, e.off, e.n), a.buf)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
		if n < e.n { // truncated while read
			entry.Changed = true
			if err := a.zeros(a.raw, e.n-n); err != nil {
				return err
			}
		}
		pos = e.off + e.n
		written += e.n
	}
	if err := a.zeros(nil, size-pos); err != nil {
		return err
	}
	if _, err := io.WriteString(a.raw, strings.Repeat("\x00", int(padTo512(int64(m.Len())+written)))); err != nil {
		return err
	}
	entry.SHA256 = hex.EncodeToString(a.hash.Sum(nil))
	return nil
}
