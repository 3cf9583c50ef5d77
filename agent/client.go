package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Client talks to a running agent's control socket.
type Client struct {
	Socket string
	http   *http.Client
}

// NewClient returns a client for the agent listening on socket.
func NewClient(socket string) *Client {
	return &Client{Socket: socket, http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}}}}
}

// Status fetches the agent's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.call(ctx, http.MethodGet, "/v1/status", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Do sends an operator request: move (group, node), standby/online (node),
// maintenance (on).
func (c *Client) Do(ctx context.Context, op, group, node string, on bool) error {
	body := map[string]any{"group": group, "node": node, "on": on}
	return c.call(ctx, http.MethodPost, "/v1/"+op, body, nil)
}

// Backup asks the agent to run a backup job now; it fails, naming the
// node that holds the job's group, when this node does not.
func (c *Client) Backup(ctx context.Context, job string) (BackupAccepted, error) {
	var out BackupAccepted
	err := c.call(ctx, http.MethodPost, "/v1/backup", map[string]string{"job": job}, &out)
	return out, err
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://harules"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the agent at %s (is `harules run` running, and are you root?): %w", c.Socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(data, &e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		return fmt.Errorf("agent: %s", e.Error)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
