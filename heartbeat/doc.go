// Package heartbeat is the authenticated UDP heartbeat transport of the
// harules node agent.
//
// Every node sends a small datagram to every peer on every declared path
// (for example "lan" and "backnet") at a fixed interval. This package
// encodes, authenticates, sends, receives and verifies those datagrams and
// hands each accepted one to the caller as a [Received] event. It knows
// nothing about failure detection: counting misses, comparing paths and
// deciding what a silent peer means is the engine's job.
//
// # Pieces
//
//   - [Codec] seals a [Message] into a datagram and opens (verifies and
//     decodes) one; [LoadSecret] reads the shared cluster secret.
//   - [ReplayGuard] rejects replayed, too old and old-incarnation messages
//     per (sender node, path).
//   - [Endpoint] binds one UDP socket per path, sends, and runs the receive
//     loop that applies every check before delivering.
//   - [Sender] sends a heartbeat on every path every interval and on demand
//     ([Sender.Kick]).
//
// # Wire format (version 2)
//
// All integers are big endian. Offsets are in bytes.
//
//	off  len  field
//	  0    2  magic "HB"
//	  2    1  version = 2
//	  3    1  C = length of cluster name (1..255)
//	  4    1  F = length of sender node name (1..255)
//	  5    1  P = length of path name (1..255)
//	  6    2  L = length of payload (0..MaxPayloadSize)
//	  8    8  incarnation (uint64)
//	 16    8  sequence number (uint64)
//	 24    8  sender wall clock, Unix nanoseconds (int64)
//	 32    2  E = length of the echo block
//	 34    C  cluster name (UTF-8)
//	       F  sender node name (UTF-8)
//	       P  path name (UTF-8)
//	       L  payload (opaque; the agent puts a JSON view of the sender here)
//	       E  echoes, each: N (1 byte, 1..255), peer node name (N bytes),
//	          that peer's incarnation (8), its sequence number (8), and the
//	          nanoseconds the sender held it before sending (8)
//	  end 32  HMAC-SHA256(cluster secret, every byte above)
//
// A datagram is exactly 66+C+F+P+L+E bytes and at most [MaxPacketSize]; any
// other length, an unknown magic or version, an echo block that does not
// hold whole echoes, or an empty or non-UTF-8 name is malformed. The echoes
// let each peer measure the round-trip time of the path (see [RTTStats]).
//
// Version 1 is the same without the E field and the echo block (64+C+F+P+L
// bytes). Endpoints read both and answer a peer whose newest heartbeat was
// version 1 in version 1, so agents from before echoes and current ones
// can run side by side during a rolling upgrade: the old agent rejects (as
// malformed) only what a new one sends before hearing the old one's first
// heartbeat, at most one interval's worth.
//
// # Checks, in order
//
// The receive loop of an [Endpoint] drops a datagram, counts it under a
// [Reason] and logs it at debug level (rate limited) when it is
//
//  1. larger than MaxPacketSize (too_large) or structurally wrong (malformed);
//  2. not authenticated by the cluster secret (bad_mac), compared in
//     constant time; nothing else in the datagram is trusted before this;
//  3. authenticated but for another cluster name (wrong_cluster: two
//     clusters configured with the same secret);
//  4. for another path than the endpoint's (wrong_path: a datagram captured
//     on "lan" replayed on "backnet" must not prove "backnet" alive);
//  5. from a node that is not a configured peer (unknown_node; this also
//     drops a node's own datagrams reflected back to it);
//  6. from a source address other than that peer's configured address on
//     this path (spoofed_source);
//  7. optionally, sent more than MaxSkew away from the receiver's clock
//     (stale);
//  8. a replay: lower incarnation than already seen from that node on any
//     path sharing the guard (old_incarnation), a
//     sequence number seen before (replay) or older than the 64-entry
//     sliding window (too_old).
//
// Only datagrams that pass all checks reach the callback, and only they
// change replay state.
//
// # Threat model
//
// Assumed: an attacker on a heartbeat network who can read, inject, drop,
// delay and replay datagrams, but does not know the cluster secret, and
// cluster members that are themselves honest.
//
// Defended against:
//   - forged datagrams and datagrams sealed with a wrong key (HMAC-SHA256);
//   - tampering with any field, including the payload (the MAC covers all);
//   - replay of captured datagrams while the receiver runs (per sender and
//     path: incarnation plus sequence window), including replay across
//     paths and reflection back to the sender;
//   - packets with a spoofed sender name from an unexpected address (the
//     source must match the configured peer address); note the source check
//     alone is weak, it adds to the MAC and does not replace it;
//   - misdirected traffic from a neighbouring cluster (wrong_cluster).
//
// Not defended against:
//   - eavesdropping: datagrams are not encrypted; the payload (groups held,
//     probe summary, policy hash) is readable on the wire. Put heartbeat
//     paths on networks where that is acceptable.
//   - a compromised member: the secret is shared, so any node holding it
//     can impersonate any other.
//   - dropping or delaying datagrams (an attacker can always make a path
//     look dead; that is what a second path is for). Delayed or replayed
//     datagrams after the receiver restarted (its replay state is in memory)
//     are accepted unless MaxSkew is set, which requires synchronised clocks.
//   - flooding: every datagram costs one HMAC; rejections are counted and
//     their logging is rate limited, but nothing throttles the socket.
//
// Incarnations must grow across restarts of the sender, or peers ignore it
// as old_incarnation until they restart themselves. [NextIncarnation]
// persists a counter so that a clock stepping backwards cannot cause that.
package heartbeat
