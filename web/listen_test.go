package web

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/engine"
)

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "harules test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestListenTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	addr, stop, err := Listen(context.Background(), newFakeBackend(t), ListenOptions{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile},
		Options{TokenFile: writeTokenFile(t, 0o600), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", "https://"+addr.String()+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("https status: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("https status: %s (TLS %v)", resp.Status, resp.TLS != nil)
	}
	resp, err = c.Get("https://" + addr.String() + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Cookies(); len(cs) != 1 || !cs[0].Secure {
		t.Fatalf("login cookie under TLS is not Secure: %+v", cs)
	}
	// Plain HTTP to the TLS port is not served.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr.String() + "/api/v1/status"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200 on the TLS port")
		}
	}
}

func TestListenRefusals(t *testing.T) {
	tokens := writeTokenFile(t, 0o600)
	certFile, _, _ := selfSigned(t)
	for name, lo := range map[string]ListenOptions{
		"cert without key": {Addr: "127.0.0.1:0", CertFile: certFile},
		"bad address":      {Addr: "nowhere"},
		"key is not a key": {Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: certFile},
	} {
		if _, stop, err := Listen(context.Background(), newFakeBackend(t), lo, Options{TokenFile: tokens, Logger: quietLogger()}); err == nil {
			stop()
			t.Errorf("%s: want an error", name)
		}
	}
	if _, _, err := Listen(context.Background(), newFakeBackend(t), ListenOptions{Addr: "127.0.0.1:0"},
		Options{TokenFile: writeTokenFile(t, 0o644), Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("group/other-readable token file: want a refusal, got %v", err)
	}
}

// recordingExecutor performs nothing and remembers the actions.
type recordingExecutor struct {
	mu      sync.Mutex
	actions []string
}

func (e *recordingExecutor) Execute(_ context.Context, a engine.Action) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.actions = append(e.actions, a.Op+" "+a.Resource)
	return nil
}

func (e *recordingExecutor) Backup(context.Context, engine.BackupRun) error { return nil }

// TestAgentServesTheConsole runs a real agent (a one-node cluster, so no
// heartbeat sockets are needed) with WebListen set: the agent starts the
// console through its hook, and a standby through the API makes the agent
// stop the group.
func TestAgentServesTheConsole(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.star")
	if err := os.WriteFile(policy, []byte(`load("@stdlib//placement.star", "active_standby")
cluster(name = "solo")
node("solo1", address = "198.51.100.1")
group("app", resources = [vip("198.51.100.10/24", interface = "eth0")], placement = active_standby(["solo1"]))
`), 0o600); err != nil {
		t.Fatal(err)
	}
	exec := &recordingExecutor{}
	_, b := startAgentConsole(t, agent.Config{PolicyPath: policy, Node: "solo1", StateDir: filepath.Join(dir, "state"),
		ControlSocket: filepath.Join(dir, "ctl.sock"), Logger: quietLogger(), Executor: exec, HandoverTimeout: time.Second}, Options{})
	holders := func() string {
		resp, body := b.call("GET", "/api/v1/status", readToken, "", "")
		if resp.StatusCode != http.StatusOK {
			return "status " + resp.Status
		}
		var st agent.Status
		if err := json.Unmarshal([]byte(body), &st); err != nil || len(st.Groups) != 1 {
			return "bad status"
		}
		return strings.Join(st.Groups[0].Holders, ",")
	}
	waitFor(t, "the agent to start app", func() bool { return holders() == "solo1" })
	if resp, body := b.call("POST", "/api/v1/move", operatorToken, "", `{"group":"app","node":"solo9"}`); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("move to an unknown node: want 404, got %s %s", resp.Status, body)
	}
	if resp, body := b.call("POST", "/api/v1/standby", operatorToken, "", `{"node":"solo1"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("standby: %s %s", resp.Status, body)
	}
	waitFor(t, "the agent to stop app after standby", func() bool { return holders() == "" })
	resp, body := b.call("GET", "/api/v1/records?kind=event", readToken, "", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "operator: standby solo1") {
		t.Fatalf("records: %s %s", resp.Status, body)
	}
	exec.mu.Lock()
	got := strings.Join(exec.actions, "; ")
	exec.mu.Unlock()
	if got != "start vip:198.51.100.10; stop vip:198.51.100.10" {
		t.Fatalf("executed actions: %q", got)
	}
}
