package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/harules/harules/policy"
)

// fence runs the cluster's fencing command against peer: the command gets
// the peer's name as its last argument and HARULES_FENCE_NODE (and
// HARULES_FENCE_ADDRESS) in its environment, like fence agents driven by a
// wrapper script. Exit status 0 means the peer is off (or cut off); anything
// else, or running past the timeout, blocks the takeover.
func fence(ctx context.Context, p *policy.Policy, peer string) error {
	argv := p.Cluster.Fence
	if len(argv) == 0 {
		return fmt.Errorf("no fence command in cluster()")
	}
	timeout := p.Cluster.FenceTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.Command(argv[0], append(append([]string{}, argv[1:]...), peer)...)
	cmd.Env = append(os.Environ(), "HARULES_FENCE_NODE="+peer)
	if n := p.Node(peer); n != nil && n.Address.IsValid() {
		cmd.Env = append(cmd.Env, "HARULES_FENCE_ADDRESS="+n.Address.String())
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so a hung fence agent and its children die
	// together at the timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("fence %s: start %s: %w", peer, argv[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("fence %s: %s: %w: %s", peer, strings.Join(argv, " "), err, tail(out.String(), 400))
		}
		return nil
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("fence %s: %s did not finish within %s", peer, strings.Join(argv, " "), timeout)
		}
		return fmt.Errorf("fence %s: %w", peer, ctx.Err())
	}
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
