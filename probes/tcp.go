package probes

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"
)

// TCPCheck passes when a TCP connection to Addr can be established.
type TCPCheck struct {
	addr string
}

var _ Check = (*TCPCheck)(nil)

// NewTCP returns a check that connects to addr ("host:port").
func NewTCP(addr string) (*TCPCheck, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("tcp check: address %q: want host:port: %w", addr, err)
	}
	if host == "" {
		return nil, fmt.Errorf("tcp check: address %q has no host", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("tcp check: address %q: port must be a number in 1..65535", addr)
	}
	return &TCPCheck{addr: addr}, nil
}

// Run dials the address; Value is the connect latency in ms.
func (c *TCPCheck) Run(ctx context.Context) Result {
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return failure(start, "tcp connect "+c.addr, err)
	}
	lat := time.Since(start)
	_ = conn.Close()
	return Result{OK: true, Value: ms(lat), Latency: lat, Text: "connected to " + conn.RemoteAddr().String()}
}
