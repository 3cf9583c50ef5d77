package disk

import (
	"strings"
	"testing"
	"time"
)

func TestTimingFromParams(t *testing.T) {
	got, err := TimingFromParams(map[string]string{})
	if err != nil || got != DefaultTiming() {
		t.Fatalf("no params: got %+v, %v; want the defaults", got, err)
	}
	// A lease alone scales every default with it.
	got, err = TimingFromParams(map[string]string{"lease": "3s"})
	want := Timing{Lease: 3 * time.Second, Renew: 600 * time.Millisecond, Margin: time.Second, IOTimeout: 400 * time.Millisecond, Settle: 100 * time.Millisecond}
	if err != nil || got != want {
		t.Fatalf("lease=3s: got %+v, %v; want %+v", got, err, want)
	}
	got, err = TimingFromParams(map[string]string{"lease": "3s", "renew": "500ms", "margin": "1500ms", "io_timeout": "250ms"})
	want = Timing{Lease: 3 * time.Second, Renew: 500 * time.Millisecond, Margin: 1500 * time.Millisecond, IOTimeout: 250 * time.Millisecond, Settle: 100 * time.Millisecond}
	if err != nil || got != want {
		t.Fatalf("explicit: got %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []struct {
		p    map[string]string
		want string
	}{
		{map[string]string{"lease": "soon"}, "not a positive duration"},
		{map[string]string{"renew": "-1s"}, "not a positive duration"},
		{map[string]string{"lease": "3s", "renew": "2s"}, "too short"},
		{map[string]string{"lease": "3s", "margin": "100ms"}, "at least a tenth"},
	} {
		if _, err := TimingFromParams(bad.p); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: got %v, want an error with %q", bad.p, err, bad.want)
		}
	}
}

func TestSpecFromParamsBusyAndTiming(t *testing.T) {
	s, err := SpecFromParams(map[string]string{"device": "/dev/x", "mountpoint": "/m"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Busy != (BusyPolicy{Kill: true, Grace: DefaultBusyGrace}) || s.Timing != DefaultTiming() {
		t.Fatalf("defaults: got busy %+v timing %+v", s.Busy, s.Timing)
	}
	s, err = SpecFromParams(map[string]string{"device": "/dev/x", "mountpoint": "/m", "kill_holders": "false", "stop_grace": "2s", "lease": "6s"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Busy != (BusyPolicy{Kill: false, Grace: 2 * time.Second}) || s.Timing.Lease != 6*time.Second {
		t.Fatalf("explicit: got busy %+v timing %+v", s.Busy, s.Timing)
	}
	for _, p := range []map[string]string{
		{"device": "/dev/x", "mountpoint": "/m", "kill_holders": "sometimes"},
		{"device": "/dev/x", "mountpoint": "/m", "stop_grace": "forever"},
		{"device": "/dev/x", "mountpoint": "/m", "lease": "1s", "renew": "1s"},
	} {
		if _, err := SpecFromParams(p); err == nil {
			t.Errorf("%v accepted", p)
		}
	}
}
