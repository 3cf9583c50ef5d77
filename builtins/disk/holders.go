package disk

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Holder is a process that keeps a mounted filesystem busy.
type Holder struct {
	PID  int
	Comm string
	Uses []string // "fd 3 /mnt/x/file", "cwd", "root", "exe", "maps /mnt/x/lib.so"
}

func (h Holder) String() string {
	return fmt.Sprintf("pid %d (%s): %s", h.PID, h.Comm, strings.Join(h.Uses, ", "))
}

// Holders lists the processes in this mount namespace that use the
// filesystem mounted at mountpoint: open files, working directory, root,
// executable and memory maps, matched by device number (so renamed and
// deleted files count too). This process itself is left out.
func Holders(mountpoint string) ([]Holder, error) {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", mountpoint, err)
	}
	dev := st.Dev
	devField := fmt.Sprintf("%02x:%02x", unix.Major(dev), unix.Minor(dev))
	myNS, _ := os.Readlink("/proc/self/ns/mnt")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var out []Holder
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		dir := "/proc/" + e.Name()
		if ns, err := os.Readlink(dir + "/ns/mnt"); err != nil || ns != myNS {
			continue // gone, or another mount namespace: it does not keep our mount busy
		}
		h := Holder{PID: pid}
		onDev := func(path string) bool {
			var s unix.Stat_t
			return unix.Stat(path, &s) == nil && s.Dev == dev
		}
		for _, name := range []string{"cwd", "root", "exe"} {
			if onDev(dir + "/" + name) {
				h.Uses = append(h.Uses, name)
			}
		}
		if fds, err := os.ReadDir(dir + "/fd"); err == nil {
			for _, fd := range fds {
				if p := dir + "/fd/" + fd.Name(); onDev(p) {
					target, _ := os.Readlink(p)
					h.Uses = append(h.Uses, "fd "+fd.Name()+" "+target)
				}
			}
		}
		if f, err := os.Open(dir + "/maps"); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				fields := strings.Fields(sc.Text())
				if len(fields) >= 6 && fields[3] == devField && fields[4] != "0" {
					use := "maps " + fields[5]
					if !containsString(h.Uses, use) {
						h.Uses = append(h.Uses, use)
					}
				}
			}
			f.Close()
		}
		if len(h.Uses) > 0 {
			comm, _ := os.ReadFile(dir + "/comm")
			h.Comm = string(bytes.TrimSpace(comm))
			out = append(out, h)
		}
	}
	return out, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
