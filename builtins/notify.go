package builtins

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"github.com/harules/harules/policy"
)

// Bounds of notify() settings.
const (
	maxNotifyTimeout = 5 * time.Minute
	maxNotifyRetries = 100
	maxNotifyQueue   = 100000
)

func declNotify(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	c, err := collector(thread, b.Name())
	if err != nil {
		return nil, err
	}
	var name, webhook string
	var command, events, headers starlark.Value = starlark.None, starlark.None, starlark.None
	timeout, backoff := duration(5*time.Second), duration(time.Second)
	retries, queue := 3, 256
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "webhook?", &webhook, "command?", &command,
		"events?", &events, "timeout?", &timeout, "retries?", &retries, "backoff?", &backoff,
		"headers?", &headers, "queue?", &queue); err != nil {
		return nil, err
	}
	pos := callerPos(thread)
	if err := checkName("notify", name); err != nil {
		return nil, err
	}
	n := &policy.Notifier{Name: name, Timeout: time.Duration(timeout), Retries: retries,
		Backoff: time.Duration(backoff), Queue: queue, Pos: pos}
	switch x := command.(type) {
	case starlark.NoneType:
	case starlark.String:
		if strings.TrimSpace(string(x)) == "" {
			return nil, fmt.Errorf("notify %q: command is empty", name)
		}
		n.Command = []string{"/bin/sh", "-c", string(x)}
	default:
		list, err := stringList(command, "argument")
		if err != nil || len(list) == 0 {
			return nil, fmt.Errorf("notify %q: command must be a command string or a non-empty list of arguments", name)
		}
		n.Command = list
	}
	if webhook != "" {
		u, err := url.Parse(webhook)
		switch {
		case err != nil:
			return nil, fmt.Errorf("notify %q: webhook %q is not a URL: %v", name, webhook, err)
		case u.Scheme != "http" && u.Scheme != "https":
			return nil, fmt.Errorf("notify %q: webhook %q must start with http:// or https://", name, webhook)
		case u.Host == "":
			return nil, fmt.Errorf("notify %q: webhook %q has no host", name, webhook)
		}
		n.Webhook = webhook
	}
	switch {
	case n.Webhook == "" && n.Command == nil:
		return nil, fmt.Errorf("notify %q: give webhook=\"https://...\" or command=[...]", name)
	case n.Webhook != "" && n.Command != nil:
		return nil, fmt.Errorf("notify %q: give either webhook= or command=, not both; declare two notify() for both", name)
	}
	if n.Headers, err = stringMap(headers, "notify "+name+": headers"); err != nil {
		return nil, err
	}
	if len(n.Headers) > 0 && n.Webhook == "" {
		return nil, fmt.Errorf("notify %q: headers only apply to a webhook", name)
	}
	if n.Events, err = stringList(events, "event"); err != nil {
		return nil, fmt.Errorf("notify %q: events: %w", name, err)
	}
	for _, e := range n.Events {
		if !knownEvent(e) {
			return nil, fmt.Errorf("notify %q: unknown event %q%s (known: %s, or a category such as \"failover\")",
				name, e, nearestEvent(e), strings.Join(policy.NotifyEvents, ", "))
		}
	}
	switch {
	case n.Timeout <= 0 || n.Timeout > maxNotifyTimeout:
		return nil, fmt.Errorf("notify %q: timeout must be between 1ms and %s, got %s", name, maxNotifyTimeout, n.Timeout)
	case retries < 0 || retries > maxNotifyRetries:
		return nil, fmt.Errorf("notify %q: retries must be between 0 and %d, got %d", name, maxNotifyRetries, retries)
	case n.Backoff <= 0 || n.Backoff > maxNotifyTimeout:
		return nil, fmt.Errorf("notify %q: backoff must be between 1ms and %s, got %s", name, maxNotifyTimeout, n.Backoff)
	case queue < 1 || queue > maxNotifyQueue:
		return nil, fmt.Errorf("notify %q: queue must be between 1 and %d, got %d", name, maxNotifyQueue, queue)
	}
	if err := c.unique("notify", name, pos); err != nil {
		return nil, err
	}
	c.Notifiers = append(c.Notifiers, n)
	return starlark.None, nil
}

// knownEvent accepts an event name or a category of them.
func knownEvent(e string) bool {
	for _, k := range policy.NotifyEvents {
		if e == k || e == policy.EventCategory(k) {
			return true
		}
	}
	return false
}

// nearestEvent suggests a known event for a misspelt one.
func nearestEvent(e string) string {
	if best := policy.Closest(e, policy.NotifyEvents); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}
