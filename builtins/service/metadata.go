package service

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MetaData is what an OCF agent says about itself (its "meta-data" action).
type MetaData struct {
	Name       string
	Version    string
	ShortDesc  string
	LongDesc   string
	Parameters []Parameter
	Actions    []Action
}

// Parameter is one OCF instance parameter (passed as OCF_RESKEY_<Name>).
type Parameter struct {
	Name       string
	Required   bool
	Unique     bool
	Deprecated bool
	Type       string // "string", "integer", "boolean", "select", ...
	Default    string
	Options    []string // allowed values of a "select" parameter
	ShortDesc  string
	LongDesc   string
}

// Action is one action the agent supports, with its advised timeout.
type Action struct {
	Name     string
	Timeout  time.Duration // 0 when not given
	Interval time.Duration // 0 when not given
	Depth    int
	Role     string // "Promoted", "Unpromoted" (or legacy "Master", "Slave"), or ""
}

// Parameter returns the parameter called name.
func (m *MetaData) Parameter(name string) (Parameter, bool) {
	for _, p := range m.Parameters {
		if p.Name == name {
			return p, true
		}
	}
	return Parameter{}, false
}

// Action returns the action called name, preferring the entry without a role
// and with depth 0 (an agent may list "monitor" once per role or depth).
func (m *MetaData) Action(name string) (Action, bool) {
	var found Action
	ok := false
	for _, a := range m.Actions {
		if a.Name != name {
			continue
		}
		if !ok || (a.Role == "" && a.Depth == 0) {
			found, ok = a, true
		}
		if a.Role == "" && a.Depth == 0 {
			break
		}
	}
	return found, ok
}

// Supports reports whether the agent lists action.
func (m *MetaData) Supports(action string) bool {
	_, ok := m.Action(action)
	return ok
}

// ParameterNames lists the parameter names in the agent's order.
func (m *MetaData) ParameterNames() []string {
	names := make([]string, len(m.Parameters))
	for i, p := range m.Parameters {
		names[i] = p.Name
	}
	return names
}

type xmlDesc struct {
	Lang string `xml:"lang,attr"`
	Text string `xml:",chardata"`
}

type xmlMetaData struct {
	XMLName     xml.Name  `xml:"resource-agent"`
	Name        string    `xml:"name,attr"`
	VersionAttr string    `xml:"version,attr"`
	Version     string    `xml:"version"`
	ShortDesc   []xmlDesc `xml:"shortdesc"`
	LongDesc    []xmlDesc `xml:"longdesc"`
	Parameters  []struct {
		Name       string    `xml:"name,attr"`
		Required   string    `xml:"required,attr"`
		Unique     string    `xml:"unique,attr"`
		Deprecated *struct{} `xml:"deprecated"`
		ShortDesc  []xmlDesc `xml:"shortdesc"`
		LongDesc   []xmlDesc `xml:"longdesc"`
		Content    struct {
			Type    string `xml:"type,attr"`
			Default string `xml:"default,attr"`
			Options []struct {
				Value string `xml:"value,attr"`
			} `xml:"option"`
		} `xml:"content"`
	} `xml:"parameters>parameter"`
	Actions []struct {
		Name     string `xml:"name,attr"`
		Timeout  string `xml:"timeout,attr"`
		Interval string `xml:"interval,attr"`
		Depth    string `xml:"depth,attr"`
		Role     string `xml:"role,attr"`
	} `xml:"actions>action"`
}

// ParseMetaData parses an OCF agent's meta-data XML.
func ParseMetaData(data []byte) (*MetaData, error) {
	var x xmlMetaData
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = false // agents' XML is hand-written; be as lenient as Pacemaker
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("parse OCF meta-data XML: %w", err)
	}
	m := &MetaData{
		Name:      x.Name,
		Version:   strings.TrimSpace(x.Version),
		ShortDesc: pickDesc(x.ShortDesc),
		LongDesc:  pickDesc(x.LongDesc),
	}
	if m.Version == "" {
		m.Version = x.VersionAttr
	}
	for _, p := range x.Parameters {
		if p.Name == "" {
			return nil, fmt.Errorf("parse OCF meta-data of %q: a parameter has no name", x.Name)
		}
		param := Parameter{
			Name:       p.Name,
			Required:   isTrue(p.Required),
			Unique:     isTrue(p.Unique),
			Deprecated: p.Deprecated != nil,
			Type:       p.Content.Type,
			Default:    p.Content.Default,
			ShortDesc:  pickDesc(p.ShortDesc),
			LongDesc:   pickDesc(p.LongDesc),
		}
		for _, o := range p.Content.Options {
			param.Options = append(param.Options, o.Value)
		}
		m.Parameters = append(m.Parameters, param)
	}
	for _, a := range x.Actions {
		act := Action{Name: a.Name, Role: a.Role}
		var err error
		if act.Timeout, err = ParseOCFDuration(a.Timeout); err != nil {
			return nil, fmt.Errorf("parse OCF meta-data of %q: action %q timeout: %w", x.Name, a.Name, err)
		}
		if act.Interval, err = ParseOCFDuration(a.Interval); err != nil {
			return nil, fmt.Errorf("parse OCF meta-data of %q: action %q interval: %w", x.Name, a.Name, err)
		}
		if a.Depth != "" {
			if act.Depth, err = strconv.Atoi(strings.TrimSpace(a.Depth)); err != nil {
				return nil, fmt.Errorf("parse OCF meta-data of %q: action %q depth %q is not a number", x.Name, a.Name, a.Depth)
			}
		}
		m.Actions = append(m.Actions, act)
	}
	return m, nil
}

// pickDesc prefers the English description, else the first one.
func pickDesc(ds []xmlDesc) string {
	for _, d := range ds {
		if d.Lang == "en" || d.Lang == "" {
			return strings.TrimSpace(d.Text)
		}
	}
	if len(ds) > 0 {
		return strings.TrimSpace(ds[0].Text)
	}
	return ""
}

// isTrue reads an OCF boolean attribute the way Pacemaker does.
func isTrue(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "y", "on":
		return true
	}
	return false
}

var ocfDurationRE = regexp.MustCompile(`^(\d+(?:\.\d+)?)\s*([a-z]*)$`)

// ParseOCFDuration parses a timeout or interval as OCF agents write them:
// a bare number of seconds ("20"), a number with a unit ("20s", "100ms",
// "2min", "1h"), or an ISO 8601 duration ("PT1M30S"). "" is 0.
func ParseOCFDuration(s string) (time.Duration, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return 0, nil
	}
	if strings.HasPrefix(s, "pt") {
		d, err := time.ParseDuration(strings.TrimPrefix(s, "pt"))
		if err != nil {
			return 0, fmt.Errorf("bad ISO 8601 duration %q", s)
		}
		return d, nil
	}
	m := ocfDurationRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("bad duration %q (want e.g. 20s, 2min, 100ms)", s)
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: %w", s, err)
	}
	var unit time.Duration
	switch m[2] {
	case "", "s", "sec", "secs", "second", "seconds":
		unit = time.Second
	case "ms", "msec", "msecs":
		unit = time.Millisecond
	case "us", "usec", "usecs":
		unit = time.Microsecond
	case "m", "min", "mins", "minute", "minutes":
		unit = time.Minute
	case "h", "hr", "hrs", "hour", "hours":
		unit = time.Hour
	default:
		return 0, fmt.Errorf("bad duration %q: unknown unit %q", s, m[2])
	}
	return time.Duration(n * float64(unit)), nil
}
