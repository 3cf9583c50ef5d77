package probes

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestLoadReal(t *testing.T) {
	c, err := NewLoad(LoadConfig{MaxPerCPU: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	r := runWithin(t, c, 5*time.Second)
	mustOK(t, r)
	if r.Values["cpus"] != float64(runtime.NumCPU()) || r.Value < 0 || r.Value != r.Values["load1"]/r.Values["cpus"] {
		t.Fatalf("inconsistent load result %+v", r)
	}
}

func TestLoadThreshold(t *testing.T) {
	proc := t.TempDir()
	cpus := float64(runtime.NumCPU())
	if err := os.WriteFile(filepath.Join(proc, "loadavg"), []byte("8.00 4.00 2.00 3/400 12345\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	one, _ := NewLoad(LoadConfig{MaxPerCPU: 8/cpus - 0.01, ProcRoot: proc})
	r := runWithin(t, one, time.Second)
	mustFail(t, r, "load per CPU")
	if r.Value != 8/cpus || r.Values["load15"] != 2 {
		t.Fatalf("parsed %+v", r)
	}
	fifteen, _ := NewLoad(LoadConfig{MaxPerCPU: 8/cpus - 0.01, Minutes: 15, ProcRoot: proc})
	mustOK(t, runWithin(t, fifteen, time.Second))

	os.WriteFile(filepath.Join(proc, "loadavg"), []byte("garbage\n"), 0o644)
	mustFail(t, runWithin(t, one, time.Second), "fewer than 3 fields")
	for _, bad := range []LoadConfig{{}, {MaxPerCPU: 1, Minutes: 2}} {
		if _, err := NewLoad(bad); err == nil {
			t.Errorf("NewLoad(%+v) accepted", bad)
		}
	}
}

func TestMemory(t *testing.T) {
	real, err := NewMemory(MemoryConfig{MinAvailablePercent: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	r := runWithin(t, real, 5*time.Second)
	mustOK(t, r)
	if r.Value <= 0 || r.Value > 100 || r.Values["total_bytes"] <= r.Values["available_bytes"] {
		t.Fatalf("implausible meminfo result %+v", r)
	}
	greedy, _ := NewMemory(MemoryConfig{MinAvailablePercent: 100})
	mustFail(t, runWithin(t, greedy, 5*time.Second), "below minimum")

	proc := t.TempDir()
	os.WriteFile(filepath.Join(proc, "meminfo"), []byte("MemTotal:  1000 kB\nMemFree: 100 kB\nMemAvailable:   250 kB\n"), 0o644)
	fake, _ := NewMemory(MemoryConfig{MinAvailablePercent: 30, ProcRoot: proc})
	r = runWithin(t, fake, time.Second)
	mustFail(t, r, "available memory 25.0% below minimum 30%")
	if r.Values["available_bytes"] != 250*1024 {
		t.Fatalf("available bytes = %v", r.Values["available_bytes"])
	}
	os.WriteFile(filepath.Join(proc, "meminfo"), []byte("MemTotal:  1000 kB\n"), 0o644)
	mustFail(t, runWithin(t, fake, time.Second), "lacks MemTotal or MemAvailable")
	if _, err := NewMemory(MemoryConfig{MinAvailablePercent: 120}); err == nil {
		t.Error("120% accepted")
	}
}
