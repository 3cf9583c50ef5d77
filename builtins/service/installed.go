// SPDX-License-Identifier: Apache-2.0

package service

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
)

// CheckInstalled reports what a node lacks to run the service: its
// commands (process, commands) or its OCF agent (ocf) must exist and be
// executable. `harules check --node` and the agent's start call it, so a
// missing program is found before the group is started, not at failover.
// A command run through /bin/sh is checked for the shell only: its words
// mean what the shell makes of them. Each problem is one error.
func CheckInstalled(spec Spec) []error {
	var problems []error
	switch spec.Kind {
	case KindProcess:
		problems = append(problems, checkProgram("command", spec.Argv, spec.Dir))
	case KindCommands:
		problems = append(problems, checkProgram("start", spec.Start, spec.Dir), checkProgram("stop", spec.Stop, spec.Dir),
			checkProgram("monitor", spec.Monitor, spec.Dir))
	case KindOCF:
		provider, root := spec.Provider, spec.OCFRoot
		if provider == "" {
			provider = "heartbeat"
		}
		if root == "" {
			root = DefaultOCFRoot
		}
		if _, err := ocfAgentPath(root, provider, spec.Agent); err != nil {
			problems = append(problems, err)
		}
	}
	return slices.DeleteFunc(problems, func(err error) bool { return err == nil })
}

// checkProgram says whether argv's program can be run from dir.
func checkProgram(what string, argv []string, dir string) error {
	if len(argv) == 0 {
		return nil // New says the command is empty
	}
	prog := argv[0]
	if dir != "" && !filepath.IsAbs(prog) && filepath.Base(prog) != prog {
		prog = filepath.Join(dir, prog) // "./run" runs from the service's dir
	}
	_, err := exec.LookPath(prog)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, exec.ErrNotFound) && filepath.Base(prog) == prog:
		return fmt.Errorf("%s: program %q is not in $PATH (%s)", what, prog, os.Getenv("PATH"))
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: program %s does not exist", what, prog)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: program %s is not executable", what, prog)
	}
	return fmt.Errorf("%s: %w", what, err)
}
