// Command harules is a high-availability manager whose failover policy is
// Starlark code. See `harules --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/harules/harules/internal/version"
)

// Exit codes, documented in --help.
const (
	exitOK       = 0
	exitFailed   = 1 // an expectation failed, or check found errors
	exitUsage    = 2 // bad flags, an invalid policy or scenario given to simulate
	exitInternal = 3
	exitLocked   = 4 // run: another harules run holds the state directory
	// exitConfig (sysexits' EX_CONFIG): run refused a policy that cannot run
	// on this node before touching anything. The supervisor and harules
	// release (ExecStopPost) release nothing after it, and the unit does not
	// restart on it (RestartPreventExitStatus=78).
	exitConfig = 78
	// run: the agent's decision loop was stuck (agent.WedgedExitCode).
	exitWedged = 70
)

// exitError carries an exit code through urfave/cli.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func fail(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args, os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code; output goes
// to stdout and stderr (parameters so tests can capture them).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	if !completing(args) {
		args = interspersed(app, args)
	}
	err := app.RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err.Error() != "" {
			fmt.Fprintln(app.ErrWriter, "harules:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(app.ErrWriter, "harules:", err)
	return exitUsage
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Writer:    stdout,
		ErrWriter: stderr,
		Name:      "harules",
		Usage:     "high availability whose failover policy is code",
		Version:   version.Get().String(),
		Description: `harules keeps a virtual IP, disks, services and databases running on one
node of a cluster and moves them when a node, its network, its application
or its database fails. The failover policy is a Starlark file (policy.star).

Start here:
  harules demo                                    simulate a node crash on the built-in example
  harules check policy.star                       validate a policy (errors as file:line:col)
  harules simulate policy.star --scenario 's/*.star'   replay scenarios, exit 1 if an expectation fails
  harules run --policy /etc/harules/policy.star --node node1   the node agent (systemd: contrib/systemd)
  harules status | move GROUP NODE | standby NODE | online NODE   steer the running agents

Exit codes: 0 ok, 1 check errors or a failed expectation, 2 usage error or
invalid input, 3 internal error, 4 another harules run holds the state
directory (run, release), 70 run: the agent's decision loop was stuck and
it gave up (the supervisor released; docs/operations.md), 78 run refused a
policy that cannot run on this node (nothing was touched).`,
		Commands: []*cli.Command{checkCommand(), simulateCommand(), demoCommand(), withAgentRuntime(runCommand(), os.Getenv), statusCommand(),
			operatorCommand("move", "run a group on a node (sticks until moved again; NODE \"\" clears the pin and lets placement decide)", "GROUP NODE", 2, "move"),
			operatorCommand("cleanup", "forget a group's recent failures on every node (\"*\": every group), so failure_timeout no longer keeps it away (like crm resource cleanup)", "GROUP", 1, "cleanup"),
			operatorCommand("standby", "make a node give away its groups and take none", "NODE", 1, "standby"),
			operatorCommand("online", "end a node's standby", "NODE", 1, "online"),
			releaseCommand(), maintenanceCommand(), backupCommand(), diskCommand(), databaseCommand(), versionCommand(),
			secretCommand(), completionCommand(), manCommand()},
		EnableBashCompletion: true, // harules completion bash|zsh
		ExitErrHandler:       func(*cli.Context, error) {},
	}
}

// interspersed moves a command's flags in front of its positional arguments,
// so `harules simulate policy.star --scenario s.star` works as operators type
// it (urfave/cli stops parsing flags at the first positional argument). For
// a command with subcommands (backup list, disk status...) the subcommand
// is the first positional argument, and flags given before it (the form of
// the days before subcommands: backup --policy P list) move after it.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 3 {
		return args
	}
	var cmd *cli.Command
	i := 1
	for ; i < len(args); i++ {
		if !strings.HasPrefix(args[i], "-") {
			cmd = app.Command(args[i])
			break
		}
	}
	if cmd == nil {
		return args
	}
	out := append([]string{}, args[:i+1]...)
	rest := args[i+1:]
	if len(cmd.Subcommands) > 0 {
		all := append([]cli.Flag{}, cmd.Flags...)
		for _, sc := range cmd.Subcommands {
			all = append(all, sc.Flags...)
		}
		flags, positional := splitFlags(all, rest)
		if len(positional) == 0 || positional[0] == "--" {
			return append(out, rest...)
		}
		sub := cmd.Command(positional[0])
		if sub == nil {
			return append(out, rest...)
		}
		cmd = sub
		out = append(out, positional[0])
		rest = append(flags, positional[1:]...)
	}
	flags, positional := splitFlags(cmd.Flags, rest)
	return append(append(out, flags...), positional...)
}

// splitFlags separates the flags (with their values) of args from the
// positional arguments; everything after "--" is positional.
func splitFlags(known []cli.Flag, args []string) (flags, positional []string) {
	takesValue := map[string]bool{}
	for _, f := range known {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	for j := 0; j < len(args); j++ {
		a := args[j]
		if a == "--" {
			positional = append(positional, args[j:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") && takesValue[name] && j+1 < len(args) {
			flags = append(flags, args[j+1])
			j++
		}
	}
	return flags, positional
}
