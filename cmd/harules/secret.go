package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/harules/harules/heartbeat"
	"github.com/harules/harules/internal/atomicfile"
)

// defaultSecretPath is where the packaged example policy's secret_file points.
const defaultSecretPath = "/etc/harules/secret"

// secretBytes is the amount of randomness in a new cluster secret (HMAC-SHA256
// gains nothing from a longer key).
const secretBytes = 32

func secretCommand() *cli.Command {
	return &cli.Command{
		Name:  "secret",
		Usage: "manage the cluster secret that authenticates heartbeats",
		Subcommands: []*cli.Command{{
			Name:  "new",
			Usage: "write a new random cluster secret (mode 0600); copy the same file to every node",
			Description: `Writes 32 random bytes, base64-encoded, to --file (default
/etc/harules/secret) with mode 0600, creating its directory (mode 0700) if
needed. An existing file is left alone (exit 1) unless --force is given:
replacing the secret on one node only makes the other nodes reject its
heartbeats, so create it once and copy the SAME file to every node, e.g.

  harules secret new
  scp -p /etc/harules/secret node2:/etc/harules/secret`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "file", Value: defaultSecretPath, Usage: "where to write the secret (cluster(secret_file = ...) in the policy)"},
				&cli.BoolFlag{Name: "force", Usage: "replace an existing secret"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() != 0 {
					return fail(exitUsage, "secret new: unexpected argument %q (the path is --file PATH)", c.Args().First())
				}
				path := c.String("file")
				if err := writeNewSecret(path, c.Bool("force")); err != nil {
					if errors.Is(err, fs.ErrExist) {
						return fail(exitFailed, "secret new: %s already exists; left unchanged (--force replaces it, and then every node needs the new file)", path)
					}
					return fail(exitFailed, "secret new: %v", err)
				}
				fmt.Fprintf(c.App.Writer, "wrote a new cluster secret to %s (mode 0600); copy this same file to every node of the cluster\n", path)
				return nil
			},
		}},
	}
}

// writeNewSecret writes a fresh random secret to path with mode 0600. Without
// force an existing path is an error wrapping fs.ErrExist and is not touched.
func writeNewSecret(path string, force bool) error {
	raw := make([]byte, secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("read random bytes: %w", err)
	}
	data := []byte(base64.StdEncoding.EncodeToString(raw) + "\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	if force {
		if err := atomicfile.Write(path, data, 0o600); err != nil {
			return err
		}
	} else {
		// O_EXCL: a secret that appears between a check and the write is never overwritten.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = f.Write(data)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	// The agent must accept what we wrote; fail here rather than at `run`.
	if _, err := heartbeat.LoadSecret(path); err != nil {
		return err
	}
	return nil
}
