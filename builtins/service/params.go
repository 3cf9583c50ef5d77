package service

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SpecFromParams builds a Spec from the string parameters a service(...)
// declaration records (policy.Resource.Params, written by builtins'
// declService):
//
//	kind                         process | commands | ocf | systemd
//	command, start, stop, monitor  an argv joined with NUL bytes (a list in
//	                             the policy), or one string (a command line)
//	ocf_provider, ocf_agent, ocf_root, unit
//	param.NAME                   OCF parameter NAME
//	env.NAME, dir, kill_with_agent (true/false)
//	start_timeout, stop_timeout, monitor_timeout, monitor_interval  e.g. "20s"
//
// A command line runs through the shell (/bin/sh -c). When it is plain words
// (letters, digits and -_./=:,+@%) naming a program, it is split on spaces
// and run directly instead, which is what the shell would do, so Pdeathsig
// reaches the program itself; a first word that is a shell builtin or
// keyword ("exec prog", "cd /x", "export A=b") or a variable assignment
// ("A=b prog") goes to the shell. Under a shell, Pdeathsig reaches only the
// shell, so write "exec ..." in the command, give a list, or set
// Options.Owner to catch what an agent crash leaves.
// Unknown keys are errors, so a new declaration argument is not silently
// ignored.
func SpecFromParams(name string, params map[string]string) (Spec, error) {
	spec := Spec{Name: name, Kind: Kind(params["kind"])}
	var problems []string
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := params[k]
		switch {
		case k == "kind":
		case k == "command":
			spec.Argv = commandArgv(v)
		case k == "start":
			spec.Start = commandArgv(v)
		case k == "stop":
			spec.Stop = commandArgv(v)
		case k == "monitor":
			spec.Monitor = commandArgv(v)
		case k == "ocf_provider":
			spec.Provider = v
		case k == "ocf_agent":
			spec.Agent = v
		case k == "ocf_root":
			spec.OCFRoot = v
		case k == "unit":
			spec.Unit = v
		case k == "dir":
			spec.Dir = v
		case k == "kill_with_agent":
			b, err := strconv.ParseBool(v)
			if err != nil {
				problems = append(problems, fmt.Sprintf("kill_with_agent %q is not true or false", v))
			}
			spec.KillWithAgent = &b
		case strings.HasPrefix(k, "param."):
			if spec.Params == nil {
				spec.Params = map[string]string{}
			}
			spec.Params[strings.TrimPrefix(k, "param.")] = v
		case strings.HasPrefix(k, "env."):
			if spec.Env == nil {
				spec.Env = map[string]string{}
			}
			spec.Env[strings.TrimPrefix(k, "env.")] = v
		case k == "start_timeout" || k == "stop_timeout" || k == "monitor_timeout" || k == "monitor_interval":
			d, err := time.ParseDuration(v)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s %q is not a duration (e.g. 20s)", k, v))
				continue
			}
			switch k {
			case "start_timeout":
				spec.StartTimeout = d
			case "stop_timeout":
				spec.StopTimeout = d
			case "monitor_timeout":
				spec.MonitorTimeout = d
			default:
				spec.MonitorInterval = d
			}
		default:
			problems = append(problems, fmt.Sprintf("unknown parameter %q", k))
		}
	}
	if len(problems) > 0 {
		return Spec{}, fmt.Errorf("service %q: %s", name, strings.Join(problems, "; "))
	}
	return spec, nil
}

// commandArgv turns a recorded command into an argv (see SpecFromParams).
func commandArgv(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil // New then says the command is empty
	}
	if strings.Contains(v, "\x00") {
		return strings.Split(v, "\x00")
	}
	if f := strings.Fields(v); plainWords(v) && !shellWord(f[0]) {
		return f
	}
	return []string{"/bin/sh", "-c", v}
}

// shellWord reports whether a command line's first word only means what
// the user meant under a shell: a builtin or keyword of POSIX sh, or a
// variable assignment.
func shellWord(w string) bool {
	if strings.Contains(w, "=") {
		return true
	}
	switch w {
	case "exec", "cd", ".", "source", "eval", "export", "set", "unset", "shift", "trap", "exit", "return", "readonly",
		"times", "umask", "ulimit", "wait", "alias", "unalias", "command", "getopts", "hash", "jobs", "fg", "bg", "read",
		"type", "local", "test", "echo", "printf", "pwd", "kill", "true", "false", "break", "continue", ":",
		"if", "then", "else", "elif", "fi", "case", "esac", "for", "while", "until", "do", "done", "in", "function":
		return true
	}
	return false
}

func plainWords(s string) bool {
	if strings.TrimSpace(s) == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" -_./=:,+@%", r)) {
			return false
		}
	}
	return true
}
