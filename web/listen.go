package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/harules/harules/agent"
)

// ListenOptions say where and how the console listens.
type ListenOptions struct {
	// Addr is host:port; a bare port ("8080") means 127.0.0.1:8080. An
	// empty host (":8080") listens on every address.
	Addr string
	// CertFile and KeyFile turn on TLS (both or neither).
	CertFile, KeyFile string
}

// ListenAddr resolves a --web-listen value: a bare port is loopback only.
func ListenAddr(addr string) (string, error) {
	if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
		return net.JoinHostPort("127.0.0.1", addr), nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("web listen address %q: want HOST:PORT or PORT: %w", addr, err)
	}
	return addr, nil
}

// Listen serves the console over b until ctx ends. The returned stop
// closes the listener and the open pages; Listen returns once the socket
// is bound, so a bad address or certificate fails at start.
func Listen(ctx context.Context, b Backend, lo ListenOptions, opts Options) (addr net.Addr, stop func(), err error) {
	if (lo.CertFile == "") != (lo.KeyFile == "") {
		return nil, nil, errors.New("web console: give both a TLS certificate and a key, or neither")
	}
	hostport, err := ListenAddr(lo.Addr)
	if err != nil {
		return nil, nil, err
	}
	var tlsConfig *tls.Config
	if lo.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(lo.CertFile, lo.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("web console TLS: %w", err)
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		opts.TLS = true
	}
	srv, err := New(b, opts)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", hostport)
	if err != nil {
		return nil, nil, fmt.Errorf("web console: %w", err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && tlsConfig == nil {
		srv.log.Warn("web console listens beyond loopback without TLS: tokens and cookies cross the network in clear; configure a certificate", "addr", ln.Addr().String())
	}
	runCtx, cancel := context.WithCancel(ctx)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return runCtx },
		ErrorLog:    slog.NewLogLogger(srv.log.Handler(), slog.LevelWarn)}
	go srv.Run(runCtx)
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			srv.log.Error("web console stopped", "error", err)
		}
	}()
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	srv.log.Info("web console listening", "url", scheme+"://"+ln.Addr().String()+"/")
	stop = func() {
		cancel() // ends the live pages, whose streams never finish on their own
		sctx, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		if err := hs.Shutdown(sctx); err != nil {
			_ = hs.Close()
		}
	}
	return ln.Addr(), stop, nil
}

// Starter returns the hook `harules run` puts in agent.Config.WebStart: it
// serves the console for the agent on the configured listen address.
func Starter(lo ListenOptions, opts Options) func(ctx context.Context, listen string, a *agent.Agent) (stop func(), err error) {
	return func(ctx context.Context, listen string, a *agent.Agent) (func(), error) {
		lo := lo
		lo.Addr = listen
		_, stop, err := Listen(ctx, a, lo, opts)
		return stop, err
	}
}
