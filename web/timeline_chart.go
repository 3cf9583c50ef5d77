package web

import (
	"fmt"
	"html"
	"html/template"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/harules/harules/agent"
	"github.com/harules/harules/engine"
)

// holderSpan is a stretch of time during which one node held a group, as
// far as this node's records tell; Node "" is a failover window: the group
// had been held and nobody held it.
type holderSpan struct {
	Group    string
	Node     string
	From, To time.Time
	// Seen: this node ran the start itself; otherwise the holder is a peer
	// the placement chose (peers' own actions are not in this node's
	// records).
	Seen bool
}

// failoverWindow is a time without holder between two holders (or until now).
type failoverWindow struct {
	Group, From, To string // From/To: holders before and after ("" none yet)
	Start, End      time.Time
}

// holderSpans reconstructs who held each group from the records (oldest
// first): this node's own successful starts and stops, the placement's
// "G should run on PEER" and peers declared dead. Records are read by their
// text, whose form the engine keeps stable ("start RES: ...", "stop RES:
// ...", "G should run on N", "N is dead").
func holderSpans(st *agent.Status, recs []engine.Record) ([]holderSpan, []failoverWindow) {
	type lane struct {
		holder string
		seen   bool
		since  time.Time
		known  bool // a holder was seen once: a gap after it is a failover window
		gapBy  string
		// next is the peer the placement moved the group to while this
		// node held it: it takes over after this node's stop.
		next string
	}
	lanes := map[string]*lane{}
	var spans []holderSpan
	var windows []failoverWindow
	set := func(g, holder string, seen bool, at time.Time) {
		l := lanes[g]
		if l == nil {
			l = &lane{since: at}
			lanes[g] = l
		}
		if l.holder == holder && (holder == "" || l.seen == seen) {
			return
		}
		if at.After(l.since) && (l.holder != "" || l.known) {
			spans = append(spans, holderSpan{Group: g, Node: l.holder, From: l.since, To: at, Seen: l.seen})
			if l.holder == "" {
				windows = append(windows, failoverWindow{Group: g, From: l.gapBy, To: holder, Start: l.since, End: at})
			}
		}
		if l.holder != "" && holder == "" {
			l.gapBy = l.holder
		}
		if holder != "" {
			l.known = true
		}
		l.holder, l.seen, l.since = holder, seen, at
	}
	for _, r := range recs {
		switch r.Kind {
		case engine.RecAction:
			if r.Node != st.Node || r.Group == "" || r.Error != "" || r.DryRun {
				continue
			}
			switch r.Op {
			case engine.OpStart:
				set(r.Group, r.Node, true, r.At)
			case engine.OpStop:
				if l := lanes[r.Group]; l == nil || l.holder == r.Node {
					next := ""
					if l != nil {
						next, l.next = l.next, ""
					}
					set(r.Group, next, false, r.At)
				}
			}
		case engine.RecPolicy:
			target := r.Target
			if r.Group == "" || target == st.Node {
				continue // this node's own holding starts with its start
			}
			if l := lanes[r.Group]; l != nil && l.holder == st.Node {
				l.next = target // the stop here ends it; the peer starts after
				continue
			}
			set(r.Group, target, false, r.At)
		case engine.RecPeer:
			peer := r.Peer
			if r.State != "dead" {
				continue
			}
			for _, g := range slices.Sorted(maps.Keys(lanes)) {
				if lanes[g].holder == peer {
					set(g, "", false, r.At)
				}
			}
		}
	}
	for _, g := range slices.Sorted(maps.Keys(lanes)) {
		l := lanes[g]
		if st.Now.After(l.since) && (l.holder != "" || l.known) {
			spans = append(spans, holderSpan{Group: g, Node: l.holder, From: l.since, To: st.Now, Seen: l.seen})
			if l.holder == "" {
				windows = append(windows, failoverWindow{Group: g, From: l.gapBy, Start: l.since, End: st.Now})
			}
		}
	}
	return spans, windows
}

// holderColors are the nodes' colors, in the status' node order.
var holderColors = []string{"#1f5fbf", "#2e8540", "#8e44ad", "#c26d00", "#00838f", "#6d4c41", "#ad1457", "#546e7a"}

const gapColor = "#b3261e"

// Chart geometry, in SVG user units.
const (
	chartWidth  = 900
	chartLeft   = 110
	chartRight  = 10
	laneHeight  = 24
	laneGap     = 6
	chartTop    = 8
	axisHeight  = 34
	minSpanUnit = 2 // a short failover stays visible
)

// holderChart draws one lane per group over the records' time range,
// colored by holder, failover windows in red, as inline SVG (no script, no
// external resource: the page's CSP allows it as is).
func holderChart(st *agent.Status, spans []holderSpan) template.HTML {
	if len(spans) == 0 {
		return ""
	}
	start, end := spans[0].From, st.Now
	var groups []string
	for _, s := range spans {
		if s.From.Before(start) {
			start = s.From
		}
		if s.To.After(end) {
			end = s.To
		}
		if !slices.Contains(groups, s.Group) {
			groups = append(groups, s.Group)
		}
	}
	slices.Sort(groups)
	total := end.Sub(start)
	if total <= 0 {
		total = time.Second
	}
	plot := float64(chartWidth - chartLeft - chartRight)
	x := func(t time.Time) float64 { return chartLeft + plot*float64(t.Sub(start))/float64(total) }
	color := map[string]string{}
	for i, n := range st.Nodes {
		color[n.Name] = holderColors[i%len(holderColors)]
	}
	height := chartTop + len(groups)*(laneHeight+laneGap) + axisHeight
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" id="holder-chart" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="who held each group over time">`,
		chartWidth, height, chartWidth, height)
	for i, g := range groups {
		y := chartTop + i*(laneHeight+laneGap)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" text-anchor="end" fill="#1d2430">%s</text>`, chartLeft-8, y+16, html.EscapeString(g))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="#eef1f6"/>`, chartLeft, y, plot, laneHeight)
		for _, s := range spans {
			if s.Group != g {
				continue
			}
			x0, x1 := x(s.From), x(s.To)
			if x1-x0 < minSpanUnit {
				x1 = x0 + minSpanUnit
			}
			fill, what, opacity := gapColor, "no holder (failover window)", "0.85"
			if s.Node != "" {
				fill, what, opacity = color[s.Node], "held by "+s.Node, "1"
				if fill == "" {
					fill = "#667085"
				}
				if !s.Seen {
					what += " (per the placement; started by the peer)"
					opacity = "0.6"
				}
			}
			fmt.Fprintf(&b, `<rect class="span" data-group="%s" data-holder="%s" x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="%s"><title>%s: %s, %s – %s (%s)</title></rect>`,
				html.EscapeString(g), html.EscapeString(s.Node), x0, y, x1-x0, laneHeight, fill, opacity,
				html.EscapeString(g), html.EscapeString(what), clock(s.From), clock(s.To), s.To.Sub(s.From).Round(time.Millisecond))
		}
	}
	axisY := chartTop + len(groups)*(laneHeight+laneGap)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#667085"/>`, chartLeft, axisY, chartWidth-chartRight, axisY)
	for i := 0; i <= 4; i++ {
		t := start.Add(total * time.Duration(i) / 4)
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#667085"/><text x="%.1f" y="%d" font-size="11" text-anchor="%s" fill="#667085">%s</text>`,
			x(t), axisY, x(t), axisY+4, x(t), axisY+16, anchor, clock(t))
	}
	// Legend: the nodes that appear, then the failover color.
	lx := chartLeft
	for _, n := range st.Nodes {
		if !slices.ContainsFunc(spans, func(s holderSpan) bool { return s.Node == n.Name }) {
			continue
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="11" fill="#1d2430">%s</text>`,
			lx, axisY+22, color[n.Name], lx+14, axisY+31, html.EscapeString(n.Name))
		lx += 24 + 7*len(n.Name)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="11" fill="#1d2430">no holder</text>`,
		lx, axisY+22, gapColor, lx+14, axisY+31)
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every value above is a number, a constant or escaped
}

func clock(t time.Time) string { return t.UTC().Format("15:04:05.000") }

// windowRow is a failover window as the timeline page lists it.
type windowRow struct {
	Group, From, To, Start, End, Length string
	Open                                bool
}

func windowRows(ws []failoverWindow) []windowRow {
	var out []windowRow
	for _, w := range ws {
		row := windowRow{Group: w.Group, From: orDash(w.From), To: w.To, Start: clock(w.Start), End: clock(w.End),
			Length: w.End.Sub(w.Start).Round(time.Millisecond).String()}
		if w.To == "" {
			row.To, row.Open = "nobody yet", true
			row.End = "now"
		}
		out = append(out, row)
	}
	return out
}
