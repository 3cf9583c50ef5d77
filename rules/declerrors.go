// SPDX-License-Identifier: Apache-2.0

package rules

import (
	"errors"
	"slices"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// declarationStatements are the declarations a policy calls as statements
// (their result, if any, only names what was declared). A mistake in one
// does not stop the file: it is recorded and the file goes on, so one run
// reports every independent mistake, not only the first.
var declarationStatements = []string{"cluster", "node", "heartbeat", "probe", "group", "rule", "backup", "notify"}

// continuingUniverse returns universe with the declaration statements
// wrapped: an error of one is appended to *errs at the call site and the
// call returns what a good declaration would (a struct with the name for
// node, heartbeat, probe and group, so later uses of .name do not fail in
// turn).
func continuingUniverse(universe starlark.StringDict, errs *Errors, path string, maxSteps uint64) starlark.StringDict {
	u := make(starlark.StringDict, len(universe))
	for k, v := range universe {
		u[k] = v
	}
	for _, name := range declarationStatements {
		orig, ok := universe[name].(*starlark.Builtin)
		if !ok {
			continue
		}
		u[name] = starlark.NewBuiltin(name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			v, err := orig.CallInternal(thread, args, kwargs)
			if err == nil {
				return v, nil
			}
			var ee *starlark.EvalError
			if errors.As(err, &ee) || thread.Local("harules.collector") == nil {
				return nil, err // raised by Starlark code, or outside a policy load
			}
			*errs = append(*errs, evalErrorAt(&starlark.EvalError{Msg: err.Error(), CallStack: thread.CallStack()}, path, maxSteps))
			return placeholder(name, args, kwargs), nil
		})
	}
	return u
}

// placeholder is what a failed declaration returns instead of its value.
func placeholder(kind string, args starlark.Tuple, kwargs []starlark.Tuple) starlark.Value {
	if !slices.Contains([]string{"node", "heartbeat", "probe", "group"}, kind) {
		return starlark.None
	}
	var name starlark.Value = starlark.String("")
	if len(args) > 0 {
		name = args[0]
	}
	for _, kv := range kwargs {
		if k, ok := kv[0].(starlark.String); ok && string(k) == "name" {
			name = kv[1]
		}
	}
	return starlarkstruct.FromStringDict(starlark.String(kind), starlark.StringDict{"name": name})
}

// sortErrors orders errors by file, line and column (recorded declaration
// errors come before the error that stopped the file, wherever it is).
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b Error) int {
		if c := strings.Compare(a.Pos.File, b.Pos.File); c != 0 {
			return c
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Col - b.Pos.Col
	})
}
