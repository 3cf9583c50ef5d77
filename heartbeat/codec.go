package heartbeat

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"strconv"
	"sync"
	"unicode/utf8"
)

// Wire format constants; the layout is documented in the package doc.
const (
	// Version is the wire format version this package writes and reads.
	Version = 1
	// MaxPacketSize bounds a datagram. Larger ones are rejected unread
	// (too_large). 16 KiB leaves room for a generous payload while staying
	// far below the UDP limit.
	MaxPacketSize = 16 * 1024
	// MinSecretSize is the shortest cluster secret accepted.
	MinSecretSize = 16

	headerSize = 32
	macSize    = sha256.Size
	// MaxPayloadSize is the largest payload that fits with one-byte names.
	MaxPayloadSize = MaxPacketSize - headerSize - macSize - 3
	maxNameLen     = 255
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
	return headerSize + len(cluster) + len(m.From) + len(m.Path) + len(m.Payload) + macSize
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
	if size := SealedSize(m, c.cluster); size > MaxPacketSize {
		return dst, fmt.Errorf("heartbeat: seal: %d-byte datagram exceeds %d bytes (payload %d bytes): %w",
			size, MaxPacketSize, len(m.Payload), ErrTooLarge)
	}
	start := len(dst)
	dst = append(dst, magic[0], magic[1], Version,
		byte(len(m.Cluster)), byte(len(m.From)), byte(len(m.Path)))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Payload)))
	dst = binary.BigEndian.AppendUint64(dst, m.Incarnation)
	dst = binary.BigEndian.AppendUint64(dst, m.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.SentUnixNano))
	dst = append(dst, m.Cluster...)
	dst = append(dst, m.From...)
	dst = append(dst, m.Path...)
	dst = append(dst, m.Payload...)

	st := c.macs.Get().(*macState)
	st.h.Reset()
	st.h.Write(dst[start:])
	dst = st.h.Sum(dst)
	c.macs.Put(st)
	return dst, nil
}

// layout is the parsed, unauthenticated structure of a datagram.
type layout struct {
	c, f, p, l int
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
	if data[2] != Version {
		return layout{}, reject(ReasonMalformed, "unsupported version "+strconv.Itoa(int(data[2])))
	}
	lay := layout{c: int(data[3]), f: int(data[4]), p: int(data[5]), l: int(binary.BigEndian.Uint16(data[6:8]))}
	if lay.c == 0 || lay.f == 0 || lay.p == 0 {
		return layout{}, reject(ReasonMalformed, "empty name")
	}
	if want := headerSize + lay.c + lay.f + lay.p + lay.l + macSize; want != len(data) {
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

	off := headerSize
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
	}
	if lay.l > 0 {
		m.Payload = bytes.Clone(data[off : off+lay.l])
	}
	return m, nil
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
