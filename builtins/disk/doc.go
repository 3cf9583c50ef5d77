// Package disk implements the disk resource: a filesystem on a shared block
// device that is mounted on at most one node, guarded by a lease kept on
// the device itself (in the spirit of SBD, sanlock's delta leases and
// quorum disks).
//
// # Lease area
//
// The lease area is the last 1 MiB (AreaSize) of the lease device: by
// default the data device itself, whose filesystem must end before the
// area (Format creates such a filesystem; Mount refuses a filesystem that
// reaches into it, reading the ext2/3/4 or XFS superblock), or a separate
// small device (Spec.LeaseDevice, e.g. a 1 MiB partition). Block 0 is a
// header, then one 4 KiB slot per node for the lease and one per node for
// the disk heartbeat (package diskhb). A node's slot number is 1 + its
// index among the sorted policy node names (SlotFor). Each slot holds the
// node name, incarnation, sequence number, the writer's wall clock (for
// humans only), its claim (none, intent, held, forced) and a CRC32C. All
// I/O is whole aligned blocks with O_DIRECT|O_DSYNC, bounded by a timeout.
//
// # Acquiring
//
// A node acquires by (1) reading all slots and refusing if another node's
// claim is live, (2) durably writing an intent, (3) waiting Settle, (4)
// re-reading: any other live claim makes it withdraw and back off, and (5)
// writing "held". Two contenders cannot both miss each other: each reads
// after its own durable write, so the later writer's read sees the earlier
// write. A claim is live until the reader has seen that exact slot value
// unchanged for Lease+Margin on its own monotonic clock, counted from the
// first read that returned it. The other node's clock is never used.
//
// # Timing argument
//
// Let L = Timing.Lease, R = Timing.Renew, M = Timing.Margin, T =
// Timing.IOTimeout. The holder renews every R; a renewal's validity starts
// when its write was issued (t0), so the holder may write to the
// filesystem until t0+L and no later; every renewal is cut off at that
// deadline. If no renewal succeeds by then the lease expires locally and
// OnLost runs: the Manager kills the holders of the mount and unmounts, and
// calls Fence (e.g. SysrqReboot: sysrq, then reboot(2)) if that fails; a
// fence that fails is logged as UNSAFE and retried with the unmount every
// R. A reader cannot have seen the value written at t0 before t0, and only takes over once that value
// has been unchanged for L+M since it first saw it, i.e. at t0+L+M or
// later. So the old holder has stopped writing at least M before the new
// holder starts; M must cover clock-rate drift (ppm, negligible) and the
// time OnLost needs to stop all writes. Validate demands L >= 2(R+T), so a
// holder gets at least two renewal attempts, and M >= L/10. A renewal
// write that hangs and lands late only makes readers wait longer.
// Defaults: L=15s, R=3s, M=5s, T=2s, Settle=0.5s: a crashed holder's disk
// is taken over 20 s after the taker first saw its slot stop changing. A
// node that does not hold the lease reads the slots every R/4 (Lease.Run),
// so it first sees the holder's last value at most R/4 after the write.
//
// The argument covers a crashed host or a hung device. It does not cover a
// killed agent on a live host: the kernel keeps the mount. Run the agent
// under a watchdog (or keep Fence-by-reboot on agent exit) where that
// matters; a restarted agent that finds the disk mounted while another
// node holds the lease unmounts at once.
//
// # Policy parameters
//
// disk(device, mountpoint, lease="15s", renew="3s", margin="5s",
// io_timeout="2s") sets the timings (TimingFromParams: a lease alone
// scales the other defaults with it; the result must pass Validate), and
// kill_holders (default True) and stop_grace (default 10s) say what a stop
// does with processes keeping the mount busy: SIGTERM, SIGKILL after the
// grace, or fail with the holders listed. Every node must run the same
// timings for a lease device (they come from the one policy).
//
// # Operator override
//
// ForceMount / Lease.ForceAcquire take the lease whatever other slots say,
// log a warning with the overridden holder and the reason, and wait R+T+M
// before mounting so that a holder that is in fact alive sees the forced
// claim at its next renewal and fences itself first.
package disk
