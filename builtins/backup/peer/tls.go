package peer

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// MinSecretSize matches the heartbeat's minimum for the cluster secret.
const MinSecretSize = 16

// keyLabel separates this key from other uses of the cluster secret.
const keyLabel = "harules backup peer copy v1"

// Credentials are the TLS settings both ends derive from the cluster secret.
type Credentials struct {
	cert tls.Certificate
	pub  ed25519.PublicKey
}

// NewCredentials derives the cluster's peer-copy identity from its name and
// secret.
func NewCredentials(cluster string, secret []byte) (*Credentials, error) {
	if len(secret) < MinSecretSize {
		return nil, fmt.Errorf("peer copy: cluster secret is %d bytes, need at least %d", len(secret), MinSecretSize)
	}
	seed, err := hkdf.Key(sha256.New, secret, []byte(keyLabel), "cluster="+cluster, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("peer copy: derive key: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	// Certificate fields other than the key carry no trust: peers compare keys.
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "harules " + cluster},
		NotBefore: time.Unix(0, 0), NotAfter: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("peer copy: certificate: %w", err)
	}
	return &Credentials{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, pub: pub}, nil
}

var errWrongKey = errors.New("peer does not hold the cluster secret")

// verifyPeer accepts exactly one certificate carrying the cluster key. The
// handshake's CertificateVerify proves the peer holds the private key.
func (c *Credentials) verifyPeer(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) != 1 {
		return fmt.Errorf("%w: want one certificate, got %d", errWrongKey, len(rawCerts))
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return fmt.Errorf("%w: %v", errWrongKey, err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !bytes.Equal(pub, c.pub) {
		return errWrongKey
	}
	return nil
}

// ServerConfig is the receiver's TLS configuration.
func (c *Credentials) ServerConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{c.cert},
		ClientAuth: tls.RequireAnyClientCert, VerifyPeerCertificate: c.verifyPeer}
}

// ClientConfig is the sender's TLS configuration. The chain is not checked
// against CAs (InsecureSkipVerify); verifyPeer checks the key instead.
func (c *Credentials) ClientConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{c.cert},
		InsecureSkipVerify: true, VerifyPeerCertificate: c.verifyPeer, ServerName: "harules-peer"}
}
