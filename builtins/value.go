package builtins

import (
	"fmt"
	"sort"
	"strings"
	"time"

	starlarktime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/harules/harules/policy"
)

// object is a Starlark value that wraps a Go value built by a declaration
// (a resource, a check, a placement, a decision) and exposes a few
// read-only attributes.
type object[T any] struct {
	typ   string
	desc  string
	v     T
	attrs starlark.StringDict
}

func newObject[T any](typ, desc string, v T, attrs starlark.StringDict) *object[T] {
	return &object[T]{typ: typ, desc: desc, v: v, attrs: attrs}
}

func (o *object[T]) String() string        { return o.desc }
func (o *object[T]) Type() string          { return o.typ }
func (o *object[T]) Freeze()               { o.attrs.Freeze() }
func (o *object[T]) Truth() starlark.Bool  { return starlark.True }
func (o *object[T]) Hash() (uint32, error) { return starlark.String(o.desc).Hash() }
func (o *object[T]) Attr(name string) (starlark.Value, error) {
	if v, ok := o.attrs[name]; ok {
		return v, nil
	}
	return nil, nil
}
func (o *object[T]) AttrNames() []string { return o.attrs.Keys() }

// callerPos is the position of the Starlark call to the running builtin.
func callerPos(thread *starlark.Thread) policy.Pos {
	if thread.CallStackDepth() < 2 {
		return policy.Pos{}
	}
	return toPos(thread.CallFrame(1).Pos)
}

func toPos(p syntax.Position) policy.Pos {
	return policy.Pos{File: p.Filename(), Line: int(p.Line), Col: int(p.Col)}
}

// duration unpacks "200ms", "5s", "1m30s" or a time.duration value.
type duration time.Duration

func (d *duration) Unpack(v starlark.Value) error {
	switch x := v.(type) {
	case starlark.String:
		t, err := time.ParseDuration(string(x))
		if err != nil {
			return fmt.Errorf("want a duration like \"200ms\", \"5s\" or \"2m\", got %q", string(x))
		}
		if t < 0 {
			return fmt.Errorf("duration %q is negative", string(x))
		}
		*d = duration(t)
		return nil
	case *elapsed:
		x.clk.untracked = true
		*d = duration(x.d)
		return nil
	case starlarktime.Duration:
		if x < 0 {
			return fmt.Errorf("duration %s is negative", x)
		}
		*d = duration(x)
		return nil
	}
	return fmt.Errorf("want a duration like \"200ms\" or \"5s\", got %s", v.Type())
}

// nodeRef unpacks a node name or a value returned by node().
type nodeRef string

func (n *nodeRef) Unpack(v starlark.Value) error {
	s, err := nameOf(v, "node")
	*n = nodeRef(s)
	return err
}

// groupRef unpacks a group name, "*" or a value returned by group().
type groupRef string

func (g *groupRef) Unpack(v starlark.Value) error {
	s, err := nameOf(v, "group")
	*g = groupRef(s)
	return err
}

// nameOf accepts a string or a declared object with a "name" attribute.
func nameOf(v starlark.Value, what string) (string, error) {
	switch x := v.(type) {
	case starlark.String:
		if x == "" {
			return "", fmt.Errorf("%s name is empty", what)
		}
		return string(x), nil
	case starlark.HasAttrs:
		if n, _ := x.Attr("name"); n != nil {
			if s, ok := n.(starlark.String); ok {
				return string(s), nil
			}
		}
	}
	return "", fmt.Errorf("want a %s name (string), got %s", what, v.Type())
}

// stringList unpacks a list or tuple of strings (or named objects).
func stringList(v starlark.Value, what string) ([]string, error) {
	if v == nil || v == starlark.None {
		return nil, nil
	}
	it, ok := v.(starlark.Iterable)
	if !ok || isString(v) {
		return nil, fmt.Errorf("want a list of %s names, got %s", what, v.Type())
	}
	var out []string
	iter := it.Iterate()
	defer iter.Done()
	var x starlark.Value
	for iter.Next(&x) {
		s, err := nameOf(x, what)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func isString(v starlark.Value) bool { _, ok := v.(starlark.String); return ok }

// stringMap unpacks a dict with string keys and scalar values into strings.
func stringMap(v starlark.Value, what string) (map[string]string, error) {
	if v == nil || v == starlark.None {
		return nil, nil
	}
	d, ok := v.(*starlark.Dict)
	if !ok {
		return nil, fmt.Errorf("%s: want a dict, got %s", what, v.Type())
	}
	out := make(map[string]string, d.Len())
	for _, item := range d.Items() {
		k, ok := item[0].(starlark.String)
		if !ok {
			return nil, fmt.Errorf("%s: keys must be strings, got %s", what, item[0].Type())
		}
		out[string(k)] = scalarString(item[1])
	}
	return out, nil
}

// scalarString renders a Starlark scalar as the string form executors read.
func scalarString(v starlark.Value) string {
	switch x := v.(type) {
	case starlark.String:
		return string(x)
	case starlark.Bool:
		if x {
			return "true"
		}
		return "false"
	case *starlark.List, starlark.Tuple:
		parts, _ := stringList(v, "value")
		return strings.Join(parts, "\x00")
	}
	return v.String()
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
