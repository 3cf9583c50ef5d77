package disk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On-disk layout. The lease area is the last AreaSize bytes of its device
// (a whole dedicated device when the device is exactly AreaSize long):
//
//	block 0            area header (magic, version, area ID)
//	blocks 1..127      lease slots, one per node (RegionLease)
//	blocks 128..254    heartbeat slots, one per node (RegionHeartbeat)
//	block 255          unused
//
// Every block is BlockSize bytes and written whole with O_DIRECT|O_DSYNC,
// so a write either lands before the call returns or the call fails, and a
// read on another host sees the device, not a page cache.
const (
	BlockSize = 4096
	AreaSize  = 1 << 20
	// MaxSlots is the largest slot number; slots are numbered from 1.
	MaxSlots = 127
)

// Region selects the lease slots or the heartbeat slots of an area.
type Region int

const (
	RegionLease     Region = 0
	RegionHeartbeat Region = 1
)

func (r Region) firstBlock() int64 {
	if r == RegionHeartbeat {
		return 128
	}
	return 1
}

var (
	areaMagic = [16]byte{'H', 'A', 'R', 'U', 'L', 'E', 'S', ' ', 'L', 'E', 'A', 'S', 'E', ' ', 'v', '1'}
	slotMagic = [4]byte{'H', 'R', 'S', 'L'}
	crcTable  = crc32.MakeTable(crc32.Castagnoli)
)

// ErrNoArea means the device carries no lease area (see FormatArea).
var ErrNoArea = errors.New("no harules lease area")

// Claim is what a node's lease slot says about the lease.
type Claim uint8

const (
	ClaimNone   Claim = 0 // not holding, not trying
	ClaimIntent Claim = 1 // trying to acquire (phase one)
	ClaimHeld   Claim = 2 // holds the lease
)

func (c Claim) String() string {
	switch c {
	case ClaimNone:
		return "none"
	case ClaimIntent:
		return "intent"
	case ClaimHeld:
		return "held"
	}
	return fmt.Sprintf("claim(%d)", uint8(c))
}

// Slot is one node's record in a region. Seq changes on every write, so a
// reader can tell a live writer from a dead one without trusting WallTime.
type Slot struct {
	Index       int // 1..MaxSlots
	Node        string
	Incarnation uint64
	Seq         uint64
	WallTime    time.Time // the writer's clock: informational only
	Claim       Claim
	Forced      bool          // the claim was taken with an operator override
	LeaseLength time.Duration // the writer's lease duration, for messages
}

// Empty reports whether the slot was never written.
func (s Slot) Empty() bool { return s.Node == "" }

const maxNodeName = 64

func (s Slot) encode(b []byte) error {
	if len(s.Node) > maxNodeName {
		return fmt.Errorf("node name %q is longer than %d bytes", s.Node, maxNodeName)
	}
	clear(b[:BlockSize])
	copy(b[0:4], slotMagic[:])
	binary.LittleEndian.PutUint16(b[4:], 1)
	binary.LittleEndian.PutUint32(b[8:], uint32(s.Index))
	copy(b[16:16+maxNodeName], s.Node)
	binary.LittleEndian.PutUint64(b[80:], s.Incarnation)
	binary.LittleEndian.PutUint64(b[88:], s.Seq)
	binary.LittleEndian.PutUint64(b[96:], uint64(s.WallTime.UnixNano()))
	b[104] = byte(s.Claim)
	if s.Forced {
		b[105] = 1
	}
	binary.LittleEndian.PutUint64(b[112:], uint64(s.LeaseLength))
	binary.LittleEndian.PutUint32(b[BlockSize-4:], crc32.Checksum(b[:BlockSize-4], crcTable))
	return nil
}

// decodeSlot returns an empty slot for an all-zero block and an error for
// a torn or foreign block.
func decodeSlot(b []byte, index int) (Slot, error) {
	if !bytes.Equal(b[0:4], slotMagic[:]) {
		if allZero(b[:BlockSize]) {
			return Slot{Index: index}, nil
		}
		return Slot{}, fmt.Errorf("slot %d: bad magic", index)
	}
	if got, want := binary.LittleEndian.Uint32(b[BlockSize-4:]), crc32.Checksum(b[:BlockSize-4], crcTable); got != want {
		return Slot{}, fmt.Errorf("slot %d: checksum mismatch (torn or corrupt write)", index)
	}
	s := Slot{
		Index:       int(binary.LittleEndian.Uint32(b[8:])),
		Node:        strings.TrimRight(string(b[16:16+maxNodeName]), "\x00"),
		Incarnation: binary.LittleEndian.Uint64(b[80:]),
		Seq:         binary.LittleEndian.Uint64(b[88:]),
		WallTime:    time.Unix(0, int64(binary.LittleEndian.Uint64(b[96:]))),
		Claim:       Claim(b[104]),
		Forced:      b[105] == 1,
		LeaseLength: time.Duration(binary.LittleEndian.Uint64(b[112:])),
	}
	if s.Index != index {
		return Slot{}, fmt.Errorf("slot %d: record says slot %d", index, s.Index)
	}
	return s, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// alignedBuf returns n bytes aligned for O_DIRECT. Go's heap does not move
// objects, so slicing at an aligned offset is safe.
func alignedBuf(n int) []byte {
	raw := make([]byte, n+BlockSize)
	off := int(uintptr(unsafe.Pointer(&raw[0])) & (BlockSize - 1))
	if off != 0 {
		off = BlockSize - off
	}
	return raw[off : off+n]
}

// Area is an open lease area. Its I/O runs in goroutines bounded by the
// caller's context: a hung device makes the call fail, not block. A
// goroutine stuck in the kernel is left behind and counted (Stuck).
type Area struct {
	Device string
	ID     [16]byte
	offset int64
	f      *os.File

	stuck atomic.Int32
	reads atomic.Int64
	write atomic.Int64
}

// Stats counts the area's completed I/O calls since it was opened.
type Stats struct{ Reads, Writes int64 }

// Stats returns I/O counts.
func (a *Area) Stats() Stats { return Stats{Reads: a.reads.Load(), Writes: a.write.Load()} }

// Stuck is how many I/O calls have not returned after their deadline.
func (a *Area) Stuck() int { return int(a.stuck.Load()) }

func deviceSize(f *os.File) (int64, error) {
	size, err := f.Seek(0, 2)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", f.Name(), err)
	}
	return size, nil
}

// AreaOffset is where the lease area starts on a device of size bytes.
func AreaOffset(size int64) (int64, error) {
	if size < AreaSize {
		return 0, fmt.Errorf("device of %d bytes is smaller than the %d-byte lease area", size, AreaSize)
	}
	return (size - AreaSize) &^ (BlockSize - 1), nil
}

func openDirect(device string) (*os.File, int64, error) {
	f, err := os.OpenFile(device, os.O_RDWR|unix.O_DIRECT|unix.O_DSYNC, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("open %s with O_DIRECT: %w", device, err)
	}
	size, err := deviceSize(f)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	off, err := AreaOffset(size)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s: %w", device, err)
	}
	return f, off, nil
}

// FormatArea writes an empty lease area at the end of device. It refuses
// when a lease area is already there (unless overwrite) and when a
// filesystem on the device reaches into the area.
func FormatArea(ctx context.Context, device string, overwrite bool) error {
	f, off, err := openDirect(device)
	if err != nil {
		return err
	}
	defer f.Close()
	if end, fstype, err := filesystemEnd(device); err != nil {
		return err
	} else if end > off {
		return fmt.Errorf("%s: the %s filesystem ends at byte %d, past the lease area at %d; shrink it or use a separate lease device", device, fstype, end, off)
	}
	a := &Area{Device: device, offset: off, f: f}
	if !overwrite {
		if _, err := a.readHeader(ctx); err == nil {
			return fmt.Errorf("%s already has a lease area; pass overwrite to wipe it", device)
		}
	}
	buf := alignedBuf(AreaSize)
	copy(buf[0:16], areaMagic[:])
	binary.LittleEndian.PutUint32(buf[16:], 1)
	binary.LittleEndian.PutUint32(buf[20:], BlockSize)
	binary.LittleEndian.PutUint64(buf[24:], AreaSize)
	binary.LittleEndian.PutUint32(buf[32:], MaxSlots)
	if _, err := rand.Read(buf[40:56]); err != nil {
		return fmt.Errorf("area ID: %w", err)
	}
	binary.LittleEndian.PutUint64(buf[56:], uint64(time.Now().UnixNano()))
	binary.LittleEndian.PutUint32(buf[BlockSize-4:], crc32.Checksum(buf[:BlockSize-4], crcTable))
	return a.io(ctx, func() error {
		if _, err := f.WriteAt(buf, off); err != nil {
			return fmt.Errorf("write lease area on %s: %w", device, err)
		}
		return nil
	})
}

// OpenArea opens the lease area of device and checks its header.
func OpenArea(ctx context.Context, device string) (*Area, error) {
	f, off, err := openDirect(device)
	if err != nil {
		return nil, err
	}
	a := &Area{Device: device, offset: off, f: f}
	id, err := a.readHeader(ctx)
	if err != nil {
		f.Close()
		return nil, err
	}
	a.ID = id
	return a, nil
}

func (a *Area) readHeader(ctx context.Context) ([16]byte, error) {
	var id [16]byte
	buf := alignedBuf(BlockSize)
	err := a.io(ctx, func() error {
		_, err := a.f.ReadAt(buf, a.offset)
		return err
	})
	if err != nil {
		return id, fmt.Errorf("read lease area header on %s: %w", a.Device, err)
	}
	if !bytes.Equal(buf[0:16], areaMagic[:]) {
		return id, fmt.Errorf("%s: %w in its last %d bytes (format it with disk.FormatArea or disk.Format)", a.Device, ErrNoArea, AreaSize)
	}
	if binary.LittleEndian.Uint32(buf[BlockSize-4:]) != crc32.Checksum(buf[:BlockSize-4], crcTable) {
		return id, fmt.Errorf("%s: lease area header checksum mismatch", a.Device)
	}
	if v := binary.LittleEndian.Uint32(buf[16:]); v != 1 {
		return id, fmt.Errorf("%s: lease area version %d is not supported", a.Device, v)
	}
	copy(id[:], buf[40:56])
	return id, nil
}

// Close closes the device.
func (a *Area) Close() error { return a.f.Close() }

// io runs op, giving up when ctx ends. A hung op keeps its goroutine (the
// kernel holds it) and is counted as stuck until it returns.
func (a *Area) io(ctx context.Context, op func() error) error {
	done := make(chan error, 1)
	go func() { done <- op() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		a.stuck.Add(1)
		go func() { <-done; a.stuck.Add(-1) }()
		return fmt.Errorf("I/O on %s did not complete: %w", a.Device, ctx.Err())
	}
}

func checkSlot(index int) error {
	if index < 1 || index > MaxSlots {
		return fmt.Errorf("slot %d is outside 1..%d", index, MaxSlots)
	}
	return nil
}

// WriteSlot writes s into slot s.Index of region r, durably.
func (a *Area) WriteSlot(ctx context.Context, r Region, s Slot) error {
	if err := checkSlot(s.Index); err != nil {
		return err
	}
	buf := alignedBuf(BlockSize)
	if err := s.encode(buf); err != nil {
		return err
	}
	pos := a.offset + (r.firstBlock()+int64(s.Index)-1)*BlockSize
	err := a.io(ctx, func() error {
		_, err := a.f.WriteAt(buf, pos)
		return err
	})
	if err != nil {
		return fmt.Errorf("write slot %d on %s: %w", s.Index, a.Device, err)
	}
	a.write.Add(1)
	return nil
}

// ReadSlots reads slots first..first+n-1 of region r in one I/O. A slot
// that fails its checksum is returned as an error for the whole read: a
// torn record must not be taken for an empty one.
func (a *Area) ReadSlots(ctx context.Context, r Region, first, n int) ([]Slot, error) {
	if err := checkSlot(first); err != nil {
		return nil, err
	}
	if n < 1 || first+n-1 > MaxSlots {
		return nil, fmt.Errorf("slots %d..%d are outside 1..%d", first, first+n-1, MaxSlots)
	}
	buf := alignedBuf(n * BlockSize)
	pos := a.offset + (r.firstBlock()+int64(first)-1)*BlockSize
	err := a.io(ctx, func() error {
		_, err := a.f.ReadAt(buf, pos)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read slots on %s: %w", a.Device, err)
	}
	a.reads.Add(1)
	slots := make([]Slot, n)
	for i := range n {
		s, err := decodeSlot(buf[i*BlockSize:(i+1)*BlockSize], first+i)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.Device, err)
		}
		slots[i] = s
	}
	return slots, nil
}
