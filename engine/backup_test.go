package engine

import (
	"strings"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestBackups drives the backup jobs of testdata/backup.star: nightly (02:00,
// bound to db, catch_up), hourly (bound to db, no catch_up) and logs (03:30,
// every node).
func TestBackups(t *testing.T) {
	p := loadPolicy(t, "backup.star")
	type run struct {
		job    string
		skip   bool
		reason string
	}
	cases := []struct {
		name  string
		self  string
		boot  string
		setup func(c *cluster)
		now   string
		want  []run
	}{
		{
			name: "not due before the scheduled time",
			self: "n1", boot: "2026-03-02T01:59:00Z", now: "2026-03-02T01:59:59.9Z",
			setup: func(c *cluster) { c.hold("db") },
		},
		{
			name: "due at the scheduled time on the node holding the group",
			self: "n1", boot: "2026-03-02T01:59:00Z", now: "2026-03-02T02:00:00.5Z",
			setup: func(c *cluster) { c.hold("db") },
			want: []run{
				{job: "nightly", reason: "scheduled 2026-03-02T02:00:00Z (0 2 * * *); runs where group db is"},
				{job: "hourly", reason: "scheduled 2026-03-02T02:00:00Z (0 * * * *); runs where group db is"},
			},
		},
		{
			name: "not on a node that does not hold the group",
			self: "n2", boot: "2026-03-02T01:59:00Z", now: "2026-03-02T02:00:00.5Z",
		},
		{
			name: "a job without group runs on every node",
			self: "n2", boot: "2026-03-02T03:29:00Z", now: "2026-03-02T03:30:01Z",
			want: []run{{job: "logs", reason: "scheduled 2026-03-02T03:30:00Z (30 3 * * *)"}},
		},
		{
			name: "catch_up runs a missed run once",
			self: "n1", boot: "2026-03-02T04:59:00Z", now: "2026-03-02T05:00:30Z",
			setup: func(c *cluster) {
				c.hold("db")
				c.state.BackupLast["nightly"] = at("2026-02-27T02:00:00Z")
				c.state.BackupLast["hourly"] = at("2026-03-02T04:00:00Z")
			},
			want: []run{
				{job: "nightly", reason: "catching up the run scheduled 2026-03-02T02:00:00Z, missed by 3h0m30s (3 missed runs, run once)"},
				{job: "hourly", skip: true, reason: "skipping the run scheduled 2026-03-02T05:00:00Z: missed by 30s and catch_up is off"},
			},
		},
		{
			name: "a run the holder made before a failover is gossiped and not repeated",
			self: "n2", boot: "2026-03-02T01:59:00Z", now: "2026-03-02T02:00:05Z",
			setup: func(c *cluster) {
				c.hold("db") // n2 took db over from n1
				c.up("n1")
				r := *c.reports["n1"]
				r.BackupLast = map[string]time.Time{"nightly": at("2026-03-02T02:00:00Z"), "hourly": at("2026-03-02T02:00:00Z")}
				c.reports["n1"] = &r
				c.hearReport(&r)
				if !c.view.Merge(c.state) {
					t.Error("Merge of a report with new backup runs reported no change")
				}
				if c.view.Merge(c.state) {
					t.Error("a second Merge of the same report reported a change")
				}
			},
		},
		{
			name: "without the gossip the new holder catches the run up",
			self: "n2", boot: "2026-03-02T01:59:00Z", now: "2026-03-02T02:00:05Z",
			setup: func(c *cluster) {
				c.hold("db")
				c.up("n1")
			},
			want: []run{
				{job: "nightly", reason: "catching up the run scheduled 2026-03-02T02:00:00Z, missed by 5s (1 missed runs, run once)"},
				{job: "hourly", skip: true, reason: "missed by 5s and catch_up is off"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClusterAt(t, p, tc.self, at(tc.boot))
			if tc.setup != nil {
				tc.setup(c)
			}
			c.now = at(tc.now)
			for _, r := range c.reports { // keep peers alive up to now
				c.hearReport(r)
			}
			d := c.decide()
			if len(d.Backups) != len(tc.want) {
				t.Fatalf("backups %+v, want %d: %+v", d.Backups, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				got := d.Backups[i]
				if got.Job != w.job || got.Skip != w.skip || got.Node != tc.self || !strings.Contains(got.Reason, w.reason) {
					t.Errorf("backup %d: %+v, want job %s skip %t on %s with reason containing %q", i, got, w.job, w.skip, tc.self, w.reason)
				}
			}
			// Once recorded as done (what Node does after a run or skip),
			// the job is not due again at the same time.
			for _, b := range d.Backups {
				c.state.BackupLast[b.Job] = b.Scheduled
			}
			if again := c.decide(); len(again.Backups) != 0 {
				t.Errorf("after recording the runs, due again: %+v", again.Backups)
			}
		})
	}
}

// TestNodeRunsBackupOnce drives Node.Step: the backup runs at its time and
// is recorded, and the next steps do not run it again.
func TestNodeRunsBackupOnce(t *testing.T) {
	p := loadPolicy(t, "backup.star")
	exec := &countingExec{}
	boot := at("2026-03-02T03:29:58Z")
	n := NewNode(p, "n1", boot, NewState(1), exec, nil)
	for now := boot; now.Before(boot.Add(10 * time.Second)); now = now.Add(time.Second) {
		n.Step(t.Context(), now)
	}
	if len(exec.backups) != 1 || exec.backups[0].Job != "logs" || !exec.backups[0].Scheduled.Equal(at("2026-03-02T03:30:00Z")) {
		t.Errorf("backups run: %+v, want logs once for 03:30", exec.backups)
	}
	if got := n.State.BackupLast["logs"]; !got.Equal(at("2026-03-02T03:30:00Z")) {
		t.Errorf("BackupLast[logs] = %s, want 03:30", got)
	}
	if r := n.Report(); !r.BackupLast["logs"].Equal(at("2026-03-02T03:30:00Z")) {
		t.Errorf("report does not gossip the run: %+v", r.BackupLast)
	}
}

// TestBackupSuccessGossip: a good run recorded on one node reaches its
// peers with the report, newest wins, and an older report changes nothing.
func TestBackupSuccessGossip(t *testing.T) {
	p := loadPolicy(t, "plan.star")
	t0 := at("2026-03-02T03:00:00Z")
	n1 := NewNode(p, "n1", t0, NewState(1), &countingExec{}, nil)
	n1.BackupSucceeded("nightly", t0.Add(time.Minute))
	r := n1.Report()
	if !r.BackupOK["nightly"].Equal(t0.Add(time.Minute)) {
		t.Fatalf("report does not carry the good run: %+v", r.BackupOK)
	}
	n2 := NewNode(p, "n2", t0, NewState(1), &countingExec{}, nil)
	n2.BackupSucceeded("nightly", t0) // n2's own older success
	n2.View.Heartbeat("n1", p.Paths[0].Name, t0.Add(time.Second), r)
	if !n2.View.Merge(n2.State) || !n2.State.BackupOK["nightly"].Equal(t0.Add(time.Minute)) {
		t.Fatalf("n2 did not learn n1's newer success: %+v", n2.State.BackupOK)
	}
	older := &Report{Node: "n1", Incarnation: 1, BackupOK: map[string]time.Time{"nightly": t0.Add(-time.Hour)}}
	n2.View.Heartbeat("n1", p.Paths[0].Name, t0.Add(2*time.Second), older)
	if n2.View.Merge(n2.State) || !n2.State.BackupOK["nightly"].Equal(t0.Add(time.Minute)) {
		t.Fatalf("an older success replaced a newer one: %+v", n2.State.BackupOK)
	}
}
