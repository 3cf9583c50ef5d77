package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/harules/harules/builtins/disk"
)

func diskCommand() *cli.Command {
	// device wraps a subcommand's action: one DEVICE argument, five minutes
	// at most.
	device := func(sub string, action func(ctx context.Context, c *cli.Context, dev string) error) cli.ActionFunc {
		return func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fail(exitUsage, "disk %s: want DEVICE; see harules disk %s --help", sub, sub)
			}
			ctx, cancel := context.WithTimeout(c.Context, 5*time.Minute)
			defer cancel()
			return action(ctx, c, c.Args().First())
		}
	}
	return &cli.Command{
		Name:      "disk",
		Usage:     "prepare a shared disk and show its lease area",
		UsageText: "harules disk format|format-area|status|clear [options] DEVICE   (harules disk SUBCOMMAND --help)",
		Description: `A disk(...) resource is guarded by a lease area in the last 1 MiB of its
device (or of its lease_device): one slot per node for the lease and one for
the disk heartbeat. Each subcommand has its own help: harules disk status --help.

Exit codes: 0 ok, 1 failed, 2 usage error.`,
		Subcommands: []*cli.Command{
			{
				Name:        "format",
				Usage:       "DESTROY the device's data: a filesystem that stops before the lease area, then an empty lease area",
				ArgsUsage:   "DEVICE",
				Description: "DESTROYS the device's data: creates a filesystem that stops before the\nlease area, then an empty lease area.",
				Flags:       []cli.Flag{&cli.StringFlag{Name: "fstype", Value: "ext4", Usage: "filesystem to create (ext2/3/4 or xfs)"}},
				Action: device("format", func(ctx context.Context, c *cli.Context, dev string) error {
					if err := disk.Format(ctx, dev, c.String("fstype")); err != nil {
						return fail(exitFailed, "disk format: %w", err)
					}
					fmt.Fprintf(c.App.Writer, "%s: %s filesystem and empty lease area written\n", dev, c.String("fstype"))
					return nil
				}),
			},
			{
				Name:      "format-area",
				Usage:     "write an empty lease area only",
				ArgsUsage: "DEVICE",
				Description: `Writes an empty lease area only (a separate lease device, or a device
whose filesystem already stops short of it).`,
				Flags: []cli.Flag{&cli.BoolFlag{Name: "overwrite", Usage: "replace an existing lease area"}},
				Action: device("format-area", func(ctx context.Context, c *cli.Context, dev string) error {
					if err := disk.FormatArea(ctx, dev, c.Bool("overwrite")); err != nil {
						return fail(exitFailed, "disk format-area: %w", err)
					}
					fmt.Fprintf(c.App.Writer, "%s: empty lease area written\n", dev)
					return nil
				}),
			},
			{
				Name:      "status",
				Usage:     "every written slot of the lease area",
				ArgsUsage: "DEVICE",
				Description: `Every written slot: node, claim, sequence number, incarnation and the
writer's clock. --observe reads again after that time and says which slots
changed (a live writer) and which did not.`,
				Flags: []cli.Flag{&cli.DurationFlag{Name: "observe", Usage: "read again after this long and report which slots changed"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: device("status", func(ctx context.Context, c *cli.Context, dev string) error {
					return diskStatus(ctx, c.App.Writer, dev, c.Duration("observe"), c.Bool("json"))
				}),
			},
			{
				Name:      "clear",
				Usage:     "release the lease of a node known to be down (operator override)",
				ArgsUsage: "DEVICE --node NODE --reason TEXT",
				Description: `The operator's override for a node known to be down (powered off, fenced
by hand) whose lease has not expired or cannot expire: watches NODE's lease
slot for --watch (default 5s) and refuses if it changes (the node is alive:
fence it first); otherwise marks the lease released, so the surviving node
mounts at its next try. Logged with the reason.`,
				Flags: []cli.Flag{&cli.StringFlag{Name: "node", Usage: "the node whose lease is released"},
					&cli.StringFlag{Name: "reason", Usage: "why the node is known to be down (logged)"},
					&cli.DurationFlag{Name: "watch", Value: 5 * time.Second, Usage: "how long the slot must stay unchanged"}},
				Action: device("clear", func(ctx context.Context, c *cli.Context, dev string) error {
					return diskClear(ctx, c.App.Writer, dev, c.String("node"), c.String("reason"), c.Duration("watch"))
				}),
			},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return fail(exitUsage, "disk: want format DEVICE, format-area DEVICE, status DEVICE or clear DEVICE; see harules disk --help")
			}
			return fail(exitUsage, "disk: unknown subcommand %q: want format, format-area, status or clear", c.Args().First())
		},
	}
}

// DiskSlot is one written slot as `harules disk status` reports it.
type DiskSlot struct {
	Region      string    `json:"region"` // "lease" or "heartbeat"
	Slot        int       `json:"slot"`
	Node        string    `json:"node"`
	Claim       string    `json:"claim,omitempty"`
	Forced      bool      `json:"forced,omitempty"`
	Seq         uint64    `json:"seq"`
	Incarnation uint64    `json:"incarnation"`
	WallTime    time.Time `json:"wall_time"`
	// Changed is set with --observe: the slot was written meanwhile.
	Changed *bool `json:"changed,omitempty"`
}

func readDiskSlots(ctx context.Context, area *disk.Area) ([]DiskSlot, error) {
	var out []DiskSlot
	for _, r := range []struct {
		region disk.Region
		name   string
	}{{disk.RegionLease, "lease"}, {disk.RegionHeartbeat, "heartbeat"}} {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		slots, err := area.ReadSlots(rctx, r.region, 1, disk.MaxSlots)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("read %s slots: %w", r.name, err)
		}
		for _, s := range slots {
			if s.Empty() {
				continue
			}
			ds := DiskSlot{Region: r.name, Slot: s.Index, Node: s.Node, Seq: s.Seq, Incarnation: s.Incarnation, WallTime: s.WallTime, Forced: s.Forced}
			if r.region == disk.RegionLease {
				ds.Claim = s.Claim.String()
			}
			out = append(out, ds)
		}
	}
	return out, nil
}

func diskStatus(ctx context.Context, w io.Writer, dev string, observe time.Duration, asJSON bool) error {
	area, err := disk.OpenArea(ctx, dev)
	if err != nil {
		return fail(exitFailed, "disk status: %w", err)
	}
	defer area.Close()
	slots, err := readDiskSlots(ctx, area)
	if err != nil {
		return fail(exitFailed, "disk status %s: %w", dev, err)
	}
	if observe > 0 {
		select {
		case <-time.After(observe):
		case <-ctx.Done():
			return fail(exitFailed, "disk status: %w", ctx.Err())
		}
		later, err := readDiskSlots(ctx, area)
		if err != nil {
			return fail(exitFailed, "disk status %s: %w", dev, err)
		}
		for i := range slots {
			changed := true
			for _, l := range later {
				if l.Region == slots[i].Region && l.Slot == slots[i].Slot {
					changed = l.Seq != slots[i].Seq || l.Incarnation != slots[i].Incarnation
				}
			}
			slots[i].Changed = &changed
		}
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if slots == nil {
			slots = []DiskSlot{}
		}
		return enc.Encode(slots)
	}
	if len(slots) == 0 {
		fmt.Fprintf(w, "%s: lease area present, no slot written yet\n", dev)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tSLOT\tNODE\tCLAIM\tSEQ\tINCARNATION\tWRITER CLOCK\tCHANGED")
	for _, s := range slots {
		claim := s.Claim
		if s.Forced {
			claim += " (forced)"
		}
		changed := "-"
		if s.Changed != nil {
			changed = map[bool]string{true: "yes (writer alive)", false: "no"}[*s.Changed]
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\n", s.Region, s.Slot, s.Node, orDash(claim), s.Seq, s.Incarnation,
			s.WallTime.UTC().Format(time.RFC3339Nano), changed)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// diskClear releases a dead node's lease claim on the operator's word, after
// checking the node is not writing its slot any more.
func diskClear(ctx context.Context, w io.Writer, dev, node, reason string, watch time.Duration) error {
	if node == "" || strings.TrimSpace(reason) == "" {
		return fail(exitUsage, "disk clear: give --node NODE and --reason \"why NODE is known to be down\"")
	}
	if watch < time.Second {
		return fail(exitUsage, "disk clear: --watch must be at least 1s, to see a live node renew")
	}
	area, err := disk.OpenArea(ctx, dev)
	if err != nil {
		return fail(exitFailed, "disk clear: %w", err)
	}
	defer area.Close()
	find := func() (disk.Slot, error) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		slots, err := area.ReadSlots(rctx, disk.RegionLease, 1, disk.MaxSlots)
		if err != nil {
			return disk.Slot{}, err
		}
		for _, sl := range slots {
			if !sl.Empty() && sl.Node == node {
				return sl, nil
			}
		}
		return disk.Slot{}, fmt.Errorf("no lease slot of node %q on %s", node, dev)
	}
	before, err := find()
	if err != nil {
		return fail(exitFailed, "disk clear: %w", err)
	}
	if before.Claim == disk.ClaimNone {
		fmt.Fprintf(w, "%s: %s holds no lease; nothing to clear\n", dev, node)
		return nil
	}
	select {
	case <-time.After(watch):
	case <-ctx.Done():
		return fail(exitFailed, "disk clear: %w", ctx.Err())
	}
	after, err := find()
	if err != nil {
		return fail(exitFailed, "disk clear: %w", err)
	}
	if after.Seq != before.Seq || after.Incarnation != before.Incarnation {
		return fail(exitFailed, "disk clear: %s wrote its lease slot while watching (seq %d -> %d): it is alive; fence it (power it off) before clearing its lease", node, before.Seq, after.Seq)
	}
	cleared := after
	cleared.Claim, cleared.Seq, cleared.Forced, cleared.WallTime = disk.ClaimNone, after.Seq+1, true, time.Now()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := area.WriteSlot(wctx, disk.RegionLease, cleared); err != nil {
		return fail(exitFailed, "disk clear: write %s's slot: %w", node, err)
	}
	slog.Warn("operator override: lease of a node declared down released", "device", dev, "node", node, "reason", reason,
		"claim_was", after.Claim.String(), "seq", after.Seq)
	fmt.Fprintf(w, "%s: lease of %s released (it was %s, unchanged for %s); reason: %s\n", dev, node, after.Claim, watch, reason)
	return nil
}
