package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	_ sender = (*webhook)(nil)
	_ sender = (*command)(nil)
)

// webhook POSTs the event as JSON.
type webhook struct {
	url     string
	headers map[string]string
	client  *http.Client
}

func (h *webhook) send(ctx context.Context, e Event, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return permanentError{fmt.Errorf("webhook request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "harules-notify")
	req.Header.Set("X-Harules-Event", e.Event)
	for k, v := range h.headers {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook POST: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // lets the connection be reused
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("webhook answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	default:
		// The receiver rejects the request itself; sending it again won't help.
		return permanentError{fmt.Errorf("webhook answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))}
	}
}

// command runs argv with the event as JSON on stdin.
type command struct {
	argv []string
}

// Env returns the HARULES_EVENT_* variables a command hook gets.
func (e Event) Env() []string {
	return []string{
		"HARULES_EVENT_NAME=" + e.Event,
		"HARULES_EVENT_CLUSTER=" + e.Cluster,
		"HARULES_EVENT_NODE=" + e.Node,
		"HARULES_EVENT_GROUP=" + e.Group,
		"HARULES_EVENT_PEER=" + e.Peer,
		"HARULES_EVENT_TEXT=" + e.Text,
		"HARULES_EVENT_REASON=" + e.Reason,
		"HARULES_EVENT_ERROR=" + e.Error,
		"HARULES_EVENT_AT=" + e.At.UTC().Format(time.RFC3339Nano),
		"HARULES_EVENT_SEQ=" + strconv.FormatUint(e.Seq, 10),
		"HARULES_EVENT_INCARNATION=" + strconv.FormatUint(e.Incarnation, 10),
	}
}

func (c *command) send(ctx context.Context, e Event, body []byte) error {
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Env = append(os.Environ(), e.Env()...)
	cmd.Stdin = bytes.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so a hung hook and its children die together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.argv[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(c.argv, " "), err, tail(out.String(), 400))
		}
		return nil
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s did not finish within the timeout (killed)", strings.Join(c.argv, " "))
		}
		return ctx.Err()
	}
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
