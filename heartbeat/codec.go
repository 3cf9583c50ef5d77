package heartbeat

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Wire format constants; the layout is documented in the package doc.
const (
	// Version is the wire format version this package writes; it also
	// reads version 1 (no echoes) so a cluster can be upgraded node by node.
	Version = 2
	// VersionNoEcho is the previous format, written only to peers that
	// sent it (agents from before heartbeat echoes).
	VersionNoEcho = 1
	// MaxPacketSize bounds a datagram. Larger ones are rejected unread
	// (too_large). 16 KiB leaves room for a generous payload while staying
	// far below the UDP limit.
	MaxPacketSize = 16 * 1024
	// MinSecretSize is the shortest cluster secret accepted.
	MinSecretSize = 16

	headerSizeV1 = 32
	// headerSize is version 2's: version 1's plus the echo block length.
	headerSize = headerSizeV1 + 2
	macSize    = sha256.Size
	// MaxPayloadSize is the largest payload that fits with one-byte names.
	MaxPayloadSize = MaxPacketSize - headerSize - macSize - 3
	maxNameLen     = 255
	// echoFixedSize is an echo's size besides its node name: name length,
	// incarnation, sequence number, hold time.
	echoFixedSize = 1 + 8 + 8 + 8
)

var magic = [2]byte{'H', 'B'}

// Message is one heartbeat.
type Message struct {
	Cluster string // cluster name; Seal fills it in when empty
	From    string // sending node name
	Path    string // heartbeat path name ("lan", "backnet")
	// Incarnation identifies one run of the sender; it must grow across
	// restarts (see NextIncarnation).
	Incarnation uint64
	// Seq grows by one per heartbeat round within an incarnation.
	Seq uint64
	// SentUnixNano is the sender's wall clock when sealing.
	SentUnixNano int64
	// Payload is an opaque view of the sender (JSON, filled by the agent).
	Payload []byte
	// Echoes report, per peer, the newest heartbeat the sender accepted
	// from that peer on this path and how long it held it before sending
	// this one, so the peer can measure the round-trip time (see Echo).
	Echoes []Echo
	// Version is the wire format: 0 when sealing means Version; Open sets
	// the version read. Version 1 carries no echoes.
	Version uint8
}

// Echo is the sender's acknowledgement of one peer's heartbeat. The peer
// computes RTT = (now - when it sent Seq) - Held, all on its own clock
// except Held, which is a duration on the sender's clock: no clock
// synchronisation is needed.
type Echo struct {
	Node        string // the peer whose heartbeat is acknowledged
	Incarnation uint64 // that heartbeat's incarnation
	Seq         uint64 // that heartbeat's sequence number
	Held        time.Duration
}

// Codec seals and opens heartbeat datagrams for one cluster. It is safe for
// concurrent use.
type Codec struct {
	cluster string
	macs    sync.Pool // *macState keyed with the secret
}

type macState struct {
	h   hash.Hash
	sum [macSize]byte
}

// NewCodec returns a codec for cluster authenticated with secret. The
// secret is copied.
func NewCodec(cluster string, secret []byte) (*Codec, error) {
	if err := checkName("cluster", cluster); err != nil {
		return nil, err
	}
	if len(secret) < MinSecretSize {
		return nil, fmt.Errorf("heartbeat: secret is %d bytes, need at least %d", len(secret), MinSecretSize)
	}
	key := bytes.Clone(secret)
	c := &Codec{cluster: cluster}
	c.macs.New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	return c, nil
}

// Cluster returns the cluster name the codec seals and accepts.
func (c *Codec) Cluster() string { return c.cluster }

// SealedSize returns the datagram size of m.
func SealedSize(m Message, cluster string) int {
	if m.Cluster != "" {
		cluster = m.Cluster
	}
	if m.Version == VersionNoEcho {
		return headerSizeV1 + len(cluster) + len(m.From) + len(m.Path) + len(m.Payload) + macSize
	}
	return headerSize + len(cluster) + len(m.From) + len(m.Path) + len(m.Payload) + echoesSize(m.Echoes) + macSize
}

func echoesSize(es []Echo) int {
	n := 0
	for _, e := range es {
		n += echoFixedSize + len(e.Node)
	}
	return n
}

// Seal encodes and authenticates m. An empty m.Cluster is filled with the
// codec's cluster; another cluster name is an error.
func (c *Codec) Seal(m Message) ([]byte, error) {
	return c.AppendSeal(make([]byte, 0, SealedSize(m, c.cluster)), m)
}

// AppendSeal is Seal appending to dst, for callers that reuse buffers.
func (c *Codec) AppendSeal(dst []byte, m Message) ([]byte, error) {
	if m.Cluster == "" {
		m.Cluster = c.cluster
	} else if m.Cluster != c.cluster {
		return dst, fmt.Errorf("heartbeat: seal: message for cluster %q, codec is for %q", m.Cluster, c.cluster)
	}
	if err := checkName("node", m.From); err != nil {
		return dst, fmt.Errorf("heartbeat: seal: %w", err)
	}
	if err := checkName("path", m.Path); err != nil {
		return dst, fmt.Errorf("heartbeat: seal: %w", err)
	}
	switch m.Version {
	case 0:
		m.Version = Version
	case VersionNoEcho:
		m.Echoes = nil // the old format has no room for them
	case Version:
	default:
		return dst, fmt.Errorf("heartbeat: seal: unknown wire version %d", m.Version)
	}
	for _, e := range m.Echoes {
		if err := checkName("echo node", e.Node); err != nil {
			return dst, fmt.Errorf("heartbeat: seal: %w", err)
		}
	}
	if size := SealedSize(m, c.cluster); size > MaxPacketSize {
		return dst, fmt.Errorf("heartbeat: seal: %d-byte datagram exceeds %d bytes (payload %d bytes): %w",
			size, MaxPacketSize, len(m.Payload), ErrTooLarge)
	}
	start := len(dst)
	dst = append(dst, magic[0], magic[1], m.Version,
		byte(len(m.Cluster)), byte(len(m.From)), byte(len(m.Path)))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Payload)))
	dst = binary.BigEndian.AppendUint64(dst, m.Incarnation)
	dst = binary.BigEndian.AppendUint64(dst, m.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.SentUnixNano))
	if m.Version != VersionNoEcho {
		dst = binary.BigEndian.AppendUint16(dst, uint16(echoesSize(m.Echoes)))
	}
	dst = append(dst, m.Cluster...)
	dst = append(dst, m.From...)
	dst = append(dst, m.Path...)
	dst = append(dst, m.Payload...)
	for _, e := range m.Echoes {
		dst = append(dst, byte(len(e.Node)))
		dst = append(dst, e.Node...)
		dst = binary.BigEndian.AppendUint64(dst, e.Incarnation)
		dst = binary.BigEndian.AppendUint64(dst, e.Seq)
		dst = binary.BigEndian.AppendUint64(dst, uint64(max(e.Held, 0)))
	}

	st := c.macs.Get().(*macState)
	st.h.Reset()
	st.h.Write(dst[start:])
	dst = st.h.Sum(dst)
	c.macs.Put(st)
	return dst, nil
}

// layout is the parsed, unauthenticated structure of a datagram.
type layout struct {
	version    byte
	h          int // header size
	c, f, p, l int
	e          int // echo block size
}

// parse checks the structure of data without trusting any of it.
func parse(data []byte) (layout, error) {
	if len(data) > MaxPacketSize {
		return layout{}, reject(ReasonTooLarge, strconv.Itoa(len(data))+" bytes")
	}
	if len(data) < headerSize+macSize {
		return layout{}, reject(ReasonMalformed, "short datagram ("+strconv.Itoa(len(data))+" bytes)")
	}
	if data[0] != magic[0] || data[1] != magic[1] {
		return layout{}, reject(ReasonMalformed, "bad magic")
	}
	lay := layout{version: data[2], h: headerSizeV1, c: int(data[3]), f: int(data[4]), p: int(data[5]), l: int(binary.BigEndian.Uint16(data[6:8]))}
	switch lay.version {
	case VersionNoEcho:
	case Version:
		if len(data) < headerSize+macSize {
			return layout{}, reject(ReasonMalformed, "short datagram ("+strconv.Itoa(len(data))+" bytes)")
		}
		lay.h = headerSize
		lay.e = int(binary.BigEndian.Uint16(data[32:34]))
	default:
		return layout{}, reject(ReasonMalformed, "unsupported version "+strconv.Itoa(int(data[2])))
	}
	if lay.c == 0 || lay.f == 0 || lay.p == 0 {
		return layout{}, reject(ReasonMalformed, "empty name")
	}
	if want := lay.h + lay.c + lay.f + lay.p + lay.l + lay.e + macSize; want != len(data) {
		return layout{}, reject(ReasonMalformed, "length fields say "+strconv.Itoa(want)+" bytes, datagram has "+strconv.Itoa(len(data)))
	}
	return lay, nil
}

// Open verifies and decodes a datagram. Errors are *RejectError with
// reason too_large, malformed, bad_mac or wrong_cluster. The returned
// message does not alias data.
func (c *Codec) Open(data []byte) (Message, error) {
	lay, err := parse(data)
	if err != nil {
		return Message{}, err
	}
	body := data[:len(data)-macSize]

	st := c.macs.Get().(*macState)
	st.h.Reset()
	st.h.Write(body)
	ok := hmac.Equal(st.h.Sum(st.sum[:0]), data[len(body):])
	c.macs.Put(st)

	off := lay.h
	cluster := data[off : off+lay.c]
	off += lay.c
	if !ok {
		// The claimed cluster is unauthenticated; quoted only to help an
		// operator spot a neighbouring cluster with a different secret.
		return Message{}, reject(ReasonBadMAC, "claims cluster "+strconv.Quote(string(cluster)))
	}
	if string(cluster) != c.cluster {
		return Message{}, reject(ReasonWrongCluster, "cluster "+strconv.Quote(string(cluster))+", want "+strconv.Quote(c.cluster))
	}
	from := data[off : off+lay.f]
	off += lay.f
	path := data[off : off+lay.p]
	off += lay.p
	if !utf8.Valid(from) || !utf8.Valid(path) {
		return Message{}, reject(ReasonMalformed, "name is not UTF-8")
	}
	m := Message{
		Cluster:      c.cluster,
		From:         string(from),
		Path:         string(path),
		Incarnation:  binary.BigEndian.Uint64(data[8:16]),
		Seq:          binary.BigEndian.Uint64(data[16:24]),
		SentUnixNano: int64(binary.BigEndian.Uint64(data[24:32])),
		Version:      lay.version,
	}
	if lay.l > 0 {
		m.Payload = bytes.Clone(data[off : off+lay.l])
	}
	off += lay.l
	echoes, err := parseEchoes(data[off : off+lay.e])
	if err != nil {
		return Message{}, err
	}
	m.Echoes = echoes
	return m, nil
}

// parseEchoes decodes an (authenticated) echo block, which must hold whole
// echoes and nothing else.
func parseEchoes(b []byte) ([]Echo, error) {
	var out []Echo
	for len(b) > 0 {
		n := int(b[0])
		if n == 0 || len(b) < echoFixedSize+n {
			return nil, reject(ReasonMalformed, "truncated or empty echo")
		}
		name := b[1 : 1+n]
		if !utf8.Valid(name) {
			return nil, reject(ReasonMalformed, "echo node name is not UTF-8")
		}
		rest := b[1+n:]
		held := binary.BigEndian.Uint64(rest[16:24])
		if held > math.MaxInt64 {
			return nil, reject(ReasonMalformed, "echo hold time out of range")
		}
		out = append(out, Echo{Node: string(name), Incarnation: binary.BigEndian.Uint64(rest[0:8]),
			Seq: binary.BigEndian.Uint64(rest[8:16]), Held: time.Duration(held)})
		b = rest[24:]
	}
	return out, nil
}

func checkName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s name is empty", what)
	case len(name) > maxNameLen:
		return fmt.Errorf("%s name %.20q... is %d bytes, at most %d", what, name, len(name), maxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%s name %q is not UTF-8", what, name)
	}
	return nil
}
