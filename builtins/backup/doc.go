// Package backup executes harules' backup(...) jobs: it produces backup
// streams (a directory tree as a tar+gzip archive with a per-file SHA-256
// manifest, or the stdout of a dump command such as pg_dump), stores them
// crash-safely in a target directory, keeps a small JSON catalogue per job,
// prunes by retention, keeps a storage headroom free, copies completed
// backups to replicas verified by checksum, and verifies and restores them.
//
// Scheduling is not done here: the engine decides when a job is due on its
// injected clock and calls [Runner.Run].
//
// The promise this package keeps: a good backup is never lost. A backup only
// appears under its final name after all its files were written, fsynced and
// checksummed; a crash leaves earlier backups intact and [Open] cleans up the
// leftovers; retention never deletes the newest good or the newest safe
// backup; a run that would eat into the headroom is refused with
// [ErrInsufficientHeadroom] after pruning what retention allows.
//
// On-disk layout of a [Store] rooted at DIR:
//
//	DIR/.lock                      flock held while the store is open
//	DIR/JOB/history.json           catalogue: every run of JOB, newest last
//	DIR/JOB/ID/meta.json           the backup's Record (source of truth on recovery)
//	DIR/JOB/ID/data.tar.gz         files kind: the archive
//	DIR/JOB/ID/manifest.jsonl      files kind: one JSON line per archive entry
//	DIR/JOB/ID/data.dump[.gz]      exec kind: the command's stdout
//	DIR/JOB/.partial-ID/           a backup being written; removed by Recover
package backup
