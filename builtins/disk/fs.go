package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// filesystemEnd returns the byte where the filesystem on device ends (0
// when there is none). It reads ext2/3/4 and XFS superblocks itself; for
// any other filesystem blkid says there is one, it gives up: it cannot
// prove the lease area is free.
func filesystemEnd(device string) (int64, string, error) {
	f, err := os.OpenFile(device, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return 0, "", fmt.Errorf("open %s: %w", device, err)
	}
	defer f.Close()
	buf := alignedBuf(2 * BlockSize)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return 0, "", fmt.Errorf("read superblock of %s: %w", device, err)
	}
	if sb := buf[1024:]; binary.LittleEndian.Uint16(sb[0x38:]) == 0xEF53 {
		blocks := uint64(binary.LittleEndian.Uint32(sb[4:]))
		if binary.LittleEndian.Uint32(sb[0x60:])&0x80 != 0 { // INCOMPAT_64BIT
			blocks |= uint64(binary.LittleEndian.Uint32(sb[0x150:])) << 32
		}
		return int64(blocks) << (10 + binary.LittleEndian.Uint32(sb[0x18:])), "ext", nil
	}
	if bytes.Equal(buf[0:4], []byte("XFSB")) {
		return int64(binary.BigEndian.Uint64(buf[8:])) * int64(binary.BigEndian.Uint32(buf[4:])), "xfs", nil
	}
	out, err := exec.Command("blkid", "-p", "-o", "value", "-s", "TYPE", device).Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 2 {
		return 0, "", nil // blkid: nothing found
	}
	if err != nil {
		return 0, "", fmt.Errorf("blkid %s (util-linux): %w", device, err)
	}
	if t := strings.TrimSpace(string(out)); t != "" {
		return 0, t, fmt.Errorf("%s holds a %s filesystem whose size harules cannot read; put the lease on a separate lease device", device, t)
	}
	return 0, "", nil
}

// ResolveDevice turns a device given as a path, UUID=... or LABEL=... into
// a device path: first through /dev/disk/by-uuid and by-label (udev), then
// with blkid, which also works without udev.
func ResolveDevice(device string) (string, error) {
	for _, kind := range []struct{ prefix, dir, flag string }{{"UUID=", "by-uuid", "-U"}, {"LABEL=", "by-label", "-L"}} {
		val, ok := strings.CutPrefix(device, kind.prefix)
		if !ok {
			continue
		}
		if p, err := filepath.EvalSymlinks(filepath.Join("/dev/disk", kind.dir, val)); err == nil {
			return p, nil
		}
		out, err := exec.Command("blkid", kind.flag, val).Output()
		if p := strings.TrimSpace(string(out)); err == nil && p != "" {
			return p, nil
		}
		return "", fmt.Errorf("no block device has %s (looked in /dev/disk/%s and asked blkid)", device, kind.dir)
	}
	if !strings.HasPrefix(device, "/") {
		return "", fmt.Errorf("device %q must be a path, UUID=... or LABEL=...", device)
	}
	p, err := filepath.EvalSymlinks(device)
	if err != nil {
		return "", fmt.Errorf("device %s: %w", device, err)
	}
	return p, nil
}

// Format creates a filesystem of fstype on device that stops short of the
// lease area, then writes an empty lease area after it. It destroys what
// the device holds. mkfsArgs are passed to mkfs before the device.
func Format(ctx context.Context, device, fstype string, mkfsArgs ...string) error {
	f, err := os.Open(device)
	if err != nil {
		return fmt.Errorf("open %s: %w", device, err)
	}
	size, err := deviceSize(f)
	f.Close()
	if err != nil {
		return err
	}
	off, err := AreaOffset(size)
	if err != nil {
		return err
	}
	var args []string
	switch fstype {
	case "ext2", "ext3", "ext4":
		args = append([]string{"-q", "-F", "-b", "4096"}, mkfsArgs...)
		args = append(args, device, strconv.FormatInt(off/4096, 10))
	case "xfs":
		args = append([]string{"-q", "-f", "-d", "size=" + strconv.FormatInt(off, 10)}, mkfsArgs...)
		args = append(args, device)
	default:
		return fmt.Errorf("format %s: harules can size ext2/3/4 and xfs to leave the lease area; for %s use a separate lease device", device, fstype)
	}
	if out, err := exec.CommandContext(ctx, "mkfs."+fstype, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.%s %s: %w: %s", fstype, device, err, bytes.TrimSpace(out))
	}
	return FormatArea(ctx, device, true)
}

// fsck checks the filesystem with fsck -a (repair what is safe). Exit codes
// 0-2 mean clean or repaired; anything else is a failure.
func fsck(ctx context.Context, device, fstype string) error {
	out, err := exec.CommandContext(ctx, "fsck", "-a", "-t", fstype, device).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() <= 2 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fsck -a -t %s %s: %w: %s", fstype, device, err, bytes.TrimSpace(out))
	}
	return nil
}

// mountFlags splits fstab-style options into mount(2) flags and the data
// string the filesystem parses.
func mountFlags(options string) (uintptr, string) {
	known := map[string]uintptr{
		"ro": unix.MS_RDONLY, "nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV, "noexec": unix.MS_NOEXEC,
		"sync": unix.MS_SYNCHRONOUS, "dirsync": unix.MS_DIRSYNC, "noatime": unix.MS_NOATIME,
		"nodiratime": unix.MS_NODIRATIME, "relatime": unix.MS_RELATIME, "strictatime": unix.MS_STRICTATIME,
		"lazytime": unix.MS_LAZYTIME,
	}
	var flags uintptr
	var data []string
	for _, o := range strings.Split(options, ",") {
		o = strings.TrimSpace(o)
		switch {
		case o == "" || o == "rw" || o == "defaults":
		case known[o] != 0:
			flags |= known[o]
		default:
			data = append(data, o)
		}
	}
	return flags, strings.Join(data, ",")
}

// MountEntry is one line of /proc/PID/mountinfo.
type MountEntry struct {
	Major, Minor uint32
	Mountpoint   string
	FSType       string
	Source       string
	Options      string // per-mount options (rw/ro, ...)
}

// ReadMountinfo parses a mountinfo file (/proc/self/mountinfo, or
// /proc/PID/mountinfo for another mount namespace): the data findmnt shows.
func ReadMountinfo(path string) ([]MountEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out []MountEntry
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i, s := range f {
			if s == "-" {
				sep = i
				break
			}
		}
		if len(f) < 7 || sep < 0 || len(f) < sep+3 {
			continue
		}
		var e MountEntry
		if _, err := fmt.Sscanf(f[2], "%d:%d", &e.Major, &e.Minor); err != nil {
			continue
		}
		e.Mountpoint = unescapeMount(f[4])
		e.Options = f[5]
		e.FSType = f[sep+1]
		e.Source = unescapeMount(f[sep+2])
		out = append(out, e)
	}
	return out, nil
}

// unescapeMount decodes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// deviceNumber returns the major and minor number of a block device.
func deviceNumber(device string) (uint32, uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(device, &st); err != nil {
		return 0, 0, fmt.Errorf("stat %s: %w", device, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, 0, fmt.Errorf("%s is not a block device", device)
	}
	return unix.Major(st.Rdev), unix.Minor(st.Rdev), nil
}

// mountedAt finds the mount of device (by device number) at mountpoint in
// the mountinfo file; ok is false when it is not mounted there.
func mountedAt(mountinfo, device, mountpoint string) (MountEntry, bool, error) {
	maj, min, err := deviceNumber(device)
	if err != nil {
		return MountEntry{}, false, err
	}
	entries, err := ReadMountinfo(mountinfo)
	if err != nil {
		return MountEntry{}, false, err
	}
	mp := filepath.Clean(mountpoint)
	for _, e := range entries {
		if e.Major == maj && e.Minor == min && e.Mountpoint == mp {
			return e, true, nil
		}
	}
	return MountEntry{}, false, nil
}
