package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/harules/harules/builtins/backup"
	"github.com/harules/harules/policy"
)

// Restores of PostgreSQL backups into new places: a new database for a
// pg_dump backup, a new data directory for a pg_basebackup one.

// newDatabaseName is what a console restore may create: a plain
// identifier, so it needs no quoting anywhere.
var newDatabaseName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func checkNewDatabase(name string) error {
	if !newDatabaseName.MatchString(name) {
		return fmt.Errorf("%w: database name %q: want lower-case letters, digits and _ (at most 63, not starting with a digit)", ErrBadTarget, name)
	}
	return nil
}

func jobKind(b *policy.Backup) string {
	if b.Kind == "postgres" && b.Params["method"] != "" {
		return b.Kind + " (method " + b.Params["method"] + ")"
	}
	return b.Kind
}

// dsnWithDatabase points a libpq connection string (keyword=value or URI)
// at another database of the same server.
func dsnWithDatabase(dsn, db string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("the job's dsn is not a valid URI: %w", err)
		}
		u.Path, u.RawPath = "/"+db, ""
		return u.String(), nil
	}
	// In a keyword=value string the last setting of a keyword wins.
	return strings.TrimSpace(dsn + " dbname=" + db), nil
}

// psqlQuery runs one SQL statement on the job's server through database
// postgres and returns its unaligned output.
func psqlQuery(ctx context.Context, dsn, sql string) (string, error) {
	conn, err := dsnWithDatabase(dsn, "postgres")
	if err != nil {
		return "", err
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "psql", "-X", "-q", "-At", "--no-password", "-v", "ON_ERROR_STOP=1", "-d", conn, "-c", sql)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("psql on the job's server: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

func postgresDatabaseExists(dsn, db string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := psqlQuery(ctx, dsn, "SELECT count(*) FROM pg_database WHERE datname = '"+db+"'")
	if err != nil {
		return false, fmt.Errorf("cannot check whether database %s exists: %w", db, err)
	}
	return out != "0", nil
}

// restorePostgresDatabase verifies a pg_dump backup, creates db and
// pg_restores the dump into it.
func restorePostgresDatabase(ctx context.Context, st *backup.Store, job, id, dsn, db string) error {
	if err := st.Verify(ctx, job, id); err != nil {
		return err
	}
	if _, err := psqlQuery(ctx, dsn, `CREATE DATABASE "`+db+`"`); err != nil {
		if strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("%w: database %s was created by someone else meanwhile: %v", backup.ErrTargetNotEmpty, db, err)
		}
		return err
	}
	conn, err := dsnWithDatabase(dsn, db)
	if err != nil {
		return err
	}
	if err := st.RestoreStreamTo(ctx, job, id, backup.PostgresRestore(conn)); err != nil {
		return fmt.Errorf("%w (the new database %s may hold a partial restore: drop it before trying again)", err, db)
	}
	return nil
}

// restoreDataDir extracts a pg_basebackup tar stream into dir (missing or
// empty), checking the stream against its SHA-256 as it goes.
func restoreDataDir(ctx context.Context, st *backup.Store, job, id, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("restore into %s: %w", dir, err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
		if err == nil {
			err = fmt.Errorf("%w: %s is not empty", backup.ErrTargetNotEmpty, dir)
		}
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil { // PostgreSQL wants its data directory private
		return err
	}
	var stderr bytes.Buffer
	tar := exec.CommandContext(ctx, "tar", "-x", "-C", dir)
	tar.Stderr = &stderr
	in, err := tar.StdinPipe()
	if err != nil {
		return err
	}
	if err := tar.Start(); err != nil {
		return fmt.Errorf("restore into %s: start tar: %w", dir, err)
	}
	serr := st.RestoreStream(ctx, job, id, in)
	in.Close()
	terr := tar.Wait()
	switch {
	case errors.Is(serr, backup.ErrCorrupt):
		return fmt.Errorf("%w (%s holds a bad copy: remove it)", serr, dir)
	case terr != nil: // tar's own error explains a broken pipe on our side
		return fmt.Errorf("restore into %s: tar: %w: %s (remove what it extracted)", dir, terr, strings.TrimSpace(stderr.String()))
	case serr != nil:
		return fmt.Errorf("%w (%s holds a partial copy: remove it)", serr, dir)
	}
	return nil
}
