// Package peer copies completed backups to another node of the cluster
// (the disaster-recovery copy) and verifies them there.
//
// [Replica] is the sending side, a backup.Replica; [Server] is the
// receiving side the agent runs on its lan address. The receiver writes a
// copy into its own store (backup.Store.Import): under a temporary name,
// fsynced, every file checked against the size and SHA-256 of the sender's
// record, and only then renamed into place. Verify asks the receiver to
// re-read its copy and check it like backup.Store.Verify does; Delete
// removes it (retention).
//
// # Channel and threat model
//
// Connections are TLS 1.3 with mutual authentication by the cluster secret:
// both sides derive the same Ed25519 key from the secret and the cluster
// name (HKDF-SHA256) and accept only a peer presenting a certificate for that
// key. So:
//   - whoever lacks the secret can neither push, verify nor delete copies,
//     nor pose as a receiver (the client checks the server's key too);
//   - the data is encrypted and integrity-protected on the wire; a replayed
//     connection fails the handshake (fresh randoms on both sides), so a
//     recorded Delete cannot be played back;
//   - the receiver only writes into the store its own policy names for the
//     job (peer_target or target): a sender cannot choose paths, and job,
//     ID and file names are checked as safe path elements.
//
// Not covered: every holder of the secret is the same principal, so one
// compromised node can push, overwrite or delete the copies of the others
// (as it can forge heartbeats); and the secret is not forward-secret for
// identity (TLS 1.3 key exchange still is ephemeral, so recorded traffic
// stays confidential after a later leak of the secret). Disk and memory
// corruption of the data at either end is caught by the SHA-256 of the
// record, which the receiver checks after fsync by reading the file back.
//
// # Protocol
//
// After the handshake the client sends one JSON request line
// ([Request]); for "put" the files of the record follow, concatenated in the
// order of Record.Files, each exactly its recorded size. The server answers
// with one JSON line ([Response]) and closes.
package peer
