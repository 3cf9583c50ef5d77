// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/harules/harules/internal/version"
)

func init() {
	// `harules --version` and `harules version` print the same line.
	cli.VersionPrinter = func(c *cli.Context) { printVersion(c.App.Writer) }
}

func printVersion(w io.Writer) {
	fmt.Fprintln(w, "harules", version.Get())
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version of this binary (--json: with its VCS revision, dirty flag and Go version)",
		Description: `Prints the same line as harules --version: the version (a release, the
pseudo-version Go derives from the git commit, or "dev"), the commit, whether
the work tree was dirty, when it was built or committed, the Go version and
platform. The running agent reports its version in harules status, in
/metrics (harules_build_info) and in the console's footer.`,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print the build information as JSON"}},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fail(exitUsage, "version: takes no arguments")
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(version.Get())
			}
			printVersion(c.App.Writer)
			return nil
		},
	}
}
