package database

import "testing"

func TestBehind(t *testing.T) {
	for _, c := range []struct {
		local, peer Position
		want        bool
	}{
		{Position{Timeline: 3, LSN: "0/5000060"}, Position{Timeline: 3, LSN: "0/5000100"}, true},
		{Position{Timeline: 3, LSN: "0/5000100"}, Position{Timeline: 3, LSN: "0/5000100"}, false},
		{Position{Timeline: 3, LSN: "1/0"}, Position{Timeline: 3, LSN: "0/FFFFFFFF"}, false},
		{Position{Timeline: 2, LSN: "0/9000000"}, Position{Timeline: 3, LSN: "0/5000000"}, true},
		{Position{Timeline: 4, LSN: "0/1000000"}, Position{Timeline: 3, LSN: "0/5000000"}, false},
		{Position{GTID: "0-1-100"}, Position{GTID: "0-2-101"}, true},
		{Position{GTID: "0-2-101,1-1-5"}, Position{GTID: "0-1-101,1-3-5"}, false},
		{Position{GTID: "0-1-100"}, Position{GTID: "0-1-100,1-1-1"}, true},
		{Position{GTID: ""}, Position{GTID: "0-1-1"}, true},
		{Position{GTID: "0-1-1"}, Position{}, false},
		{Position{Timeline: 1, LSN: "0/1"}, Position{GTID: "0-1-1"}, false}, // different engines
		{Position{Timeline: 1, LSN: "0/1"}, Position{Timeline: 1, LSN: "garbage"}, false},
	} {
		if got := behind(c.local, c.peer); got != c.want {
			t.Errorf("behind(%v, %v) = %v, want %v", c.local, c.peer, got, c.want)
		}
	}
}

func TestParseLSN(t *testing.T) {
	if v, err := ParseLSN("1/5000100"); err != nil || v != 1<<32|0x5000100 {
		t.Errorf("ParseLSN(1/5000100) = %x, %v", v, err)
	}
	for _, bad := range []string{"", "5000100", "x/1", "1/2/3"} {
		if _, err := ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) passed", bad)
		}
	}
}

func TestControlTimeline(t *testing.T) {
	out := "pg_control version number:            1300\nLatest checkpoint location:           0/3028000\nLatest checkpoint's TimeLineID:       3\nLatest checkpoint's PrevTimeLineID:   2\n"
	if tli, err := controlTimeline(out); err != nil || tli != 3 {
		t.Errorf("controlTimeline = %d, %v; want 3", tli, err)
	}
	if _, err := controlTimeline("Latest checkpoint location: 0/1\n"); err == nil {
		t.Error("controlTimeline without the line passed")
	}
}
