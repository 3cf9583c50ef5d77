package probes

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// LoadConfig configures a load-average check.
type LoadConfig struct {
	// MaxPerCPU is the highest acceptable load average divided by the number
	// of CPUs usable by the agent (must be positive).
	MaxPerCPU float64
	// Minutes selects the 1, 5 or 15 minute average (0 means 1).
	Minutes int
	// ProcRoot is where /proc is mounted ("" means /proc).
	ProcRoot string
}

// LoadCheck reads /proc/loadavg. Value is the load per CPU; Values holds
// load1, load5, load15 and cpus.
type LoadCheck struct {
	cfg   LoadConfig
	field int
	cpus  int
}

var _ Check = (*LoadCheck)(nil)

// NewLoad validates cfg and returns the check.
func NewLoad(cfg LoadConfig) (*LoadCheck, error) {
	if cfg.MaxPerCPU <= 0 {
		return nil, fmt.Errorf("load check: max per cpu %g must be positive", cfg.MaxPerCPU)
	}
	field := map[int]int{0: 0, 1: 0, 5: 1, 15: 2}
	f, ok := field[cfg.Minutes]
	if !ok {
		return nil, fmt.Errorf("load check: minutes %d must be 1, 5 or 15", cfg.Minutes)
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	return &LoadCheck{cfg: cfg, field: f, cpus: runtime.NumCPU()}, nil
}

// Run reads the load average.
func (c *LoadCheck) Run(ctx context.Context) Result {
	start := time.Now()
	data, err := os.ReadFile(filepath.Join(c.cfg.ProcRoot, "loadavg"))
	if err != nil {
		return failure(start, "reading loadavg", err)
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 {
		return failure(start, fmt.Sprintf("loadavg %q has fewer than 3 fields", strings.TrimSpace(string(data))), nil)
	}
	var loads [3]float64
	for i := range loads {
		if loads[i], err = strconv.ParseFloat(fields[i], 64); err != nil {
			return failure(start, "parsing loadavg", err)
		}
	}
	perCPU := loads[c.field] / float64(c.cpus)
	res := Result{
		Value:   perCPU,
		Values:  map[string]float64{"load1": loads[0], "load5": loads[1], "load15": loads[2], "cpus": float64(c.cpus)},
		Text:    fmt.Sprintf("load %s %s %s on %d CPUs", fields[0], fields[1], fields[2], c.cpus),
		Latency: time.Since(start),
	}
	if perCPU > c.cfg.MaxPerCPU {
		res.Err = fmt.Sprintf("load per CPU %.2f above maximum %g", perCPU, c.cfg.MaxPerCPU)
		return res
	}
	res.OK = true
	return res
}

// MemoryConfig configures an available-memory check.
type MemoryConfig struct {
	// MinAvailablePercent is the minimum MemAvailable as a share of
	// MemTotal (0..100).
	MinAvailablePercent float64
	// ProcRoot is where /proc is mounted ("" means /proc).
	ProcRoot string
}

// MemoryCheck reads /proc/meminfo. Value is the available percent; Values
// holds available_percent, available_bytes and total_bytes.
type MemoryCheck struct {
	cfg MemoryConfig
}

var _ Check = (*MemoryCheck)(nil)

// NewMemory validates cfg and returns the check.
func NewMemory(cfg MemoryConfig) (*MemoryCheck, error) {
	if cfg.MinAvailablePercent < 0 || cfg.MinAvailablePercent > 100 {
		return nil, fmt.Errorf("memory check: min available percent %g must be within 0..100", cfg.MinAvailablePercent)
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	return &MemoryCheck{cfg: cfg}, nil
}

// Run reads meminfo.
func (c *MemoryCheck) Run(ctx context.Context) Result {
	start := time.Now()
	data, err := os.ReadFile(filepath.Join(c.cfg.ProcRoot, "meminfo"))
	if err != nil {
		return failure(start, "reading meminfo", err)
	}
	kb := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "MemTotal" && key != "MemAvailable") {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			kb[key] = v
		}
	}
	total, okT := kb["MemTotal"]
	avail, okA := kb["MemAvailable"]
	if !okT || !okA || total <= 0 {
		return failure(start, "meminfo lacks MemTotal or MemAvailable (kernel older than 3.14?)", nil)
	}
	pct := 100 * avail / total
	res := Result{
		Value:   pct,
		Values:  map[string]float64{"available_percent": pct, "available_bytes": avail * 1024, "total_bytes": total * 1024},
		Text:    fmt.Sprintf("%.1f%% of %.0f MiB available", pct, total/1024),
		Latency: time.Since(start),
	}
	if pct < c.cfg.MinAvailablePercent {
		res.Err = fmt.Sprintf("available memory %.1f%% below minimum %g%%", pct, c.cfg.MinAvailablePercent)
		return res
	}
	res.OK = true
	return res
}
