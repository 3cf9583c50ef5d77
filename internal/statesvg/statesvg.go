// Package statesvg draws one node's view of the cluster as a standalone SVG
// picture: the nodes as boxes with the groups they hold, this node's
// heartbeat paths to each peer (coloured by state, labelled with RTT and
// loss), the groups nobody holds and the active alerts. `harules status
// --svg` writes it and the web console shows it inline on the overview.
//
// The output has no script and no style attribute or element (colours are
// presentation attributes), so it passes the console's CSP, and it is the
// same bytes for the same status.
package statesvg

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/harules/harules/agent"
)

// Options tune the picture for where it is shown.
type Options struct {
	// ID and Class are set on the root <svg> element when not empty (the
	// console sizes the inline picture through its class).
	ID, Class string
	// NoAlerts leaves the alerts out (the console lists them in a table
	// right under the picture).
	NoAlerts bool
}

// Colours, as in the simulator's timeline (simulate/svg.go).
const (
	colUp        = "#16a34a"
	colUpText    = "#15803d"
	colDown      = "#dc2626"
	colDownText  = "#b91c1c"
	colUnknown   = "#9ca3af"
	colUnkText   = "#4b5563"
	colSelf      = "#1f5fbf"
	colText      = "#111827"
	colMuted     = "#4b5563"
	colWarning   = "#b45309"
	colSplit     = "#dc2626"
	colGroupFill = "#dbeafe"
	colGroupLine = "#3b82f6"
	colMoveFill  = "#fef3c7"
	colMoveLine  = "#d97706"
)

// Geometry. Text widths are estimates (no font metrics in a standalone
// file): charW per character at the 12px font.
const (
	charW     = 7.0
	lineH     = 16.0
	pad       = 16.0
	boxPad    = 8.0
	pillH     = 18.0
	pillGap   = 4.0
	pathSep   = 12.0 // distance between the parallel lines of one peer
	margin    = 8.0  // free space kept around boxes and labels
	minBoxW   = 180.0
	maxBoxW   = 280.0
	maxText   = 140 // characters of an alert or reason line before "…"
	labelLine = 15.0
	// fitW x fitH is the area the layout is chosen for (the console's
	// width, a screen's height).
	fitW, fitH = 1150.0, 650.0
)

type rect struct{ x, y, w, h float64 }

func (r rect) overlaps(o rect, gap float64) bool {
	return r.x < o.x+o.w+gap && o.x < r.x+r.w+gap && r.y < o.y+o.h+gap && o.y < r.y+r.h+gap
}

func (r rect) center() (float64, float64) { return r.x + r.w/2, r.y + r.h/2 }

// pathView is one heartbeat path from this node to a peer.
type pathView struct {
	name  string
	state string // up, down, unknown
	label string
}

// pill is one group drawn in its holder's box.
type pill struct {
	group string
	text  string
	kind  string // held, moving, split-brain
	title string
}

type nodeView struct {
	st    agent.NodeStatus
	self  bool
	lines []line // under the name
	pills []pill
	paths []pathView // this node's paths to it (peers only)
	box   rect
	label rect // the path labels' block (peers only)
	// labelW is the width of the labels' block.
	labelW float64
}

type line struct {
	text, fill string
	bold       bool
}

// Render draws st. A nil status gives a small picture that says so.
func Render(st *agent.Status, opts Options) []byte {
	var b bytes.Buffer
	if st == nil {
		open(&b, opts, 320, 40, "no status yet")
		fmt.Fprintf(&b, `<text x="%d" y="24" fill="%s">%s</text>`+"\n", int(pad), colMuted, esc("The agent has not decided yet."))
		b.WriteString("</svg>\n")
		return b.Bytes()
	}
	nodes := buildNodes(st)
	boxW, boxH := boxSize(nodes)
	layout(nodes, boxW, boxH)

	// Everything below the picture: groups nobody holds, then alerts.
	var below []textLine
	unplaced := unplacedGroups(st, nodes)
	if len(unplaced) > 0 {
		below = append(below, textLine{text: "Stopped / waiting", fill: colText, bold: true, class: "st-heading"})
		below = append(below, unplaced...)
	}
	alerts := st.Alerts
	if !opts.NoAlerts {
		below = append(below, textLine{text: "Alerts", fill: colText, bold: true, class: "st-heading"})
	} else {
		alerts = nil
	}
	if len(st.Alerts) == 0 && !opts.NoAlerts {
		below = append(below, textLine{text: "No active alert.", fill: colUpText, class: "st-no-alert"})
	}
	for _, a := range alerts {
		tl := textLine{text: fmt.Sprintf("[%s] %s: %s", a.Severity, a.Name, a.Message), fill: colText,
			class: "st-alert st-" + classWord(a.Severity), attr: map[string]string{"data-alert": a.Name}}
		if a.Node != "" {
			tl.text += " (" + a.Node + ")"
		}
		switch strings.ToLower(a.Severity) {
		case "critical":
			tl.fill, tl.bold = colDownText, true
		case "warning":
			tl.fill = colWarning
		}
		below = append(below, tl)
	}

	// Bounds of the picture, then shift it under the title.
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, n := range nodes {
		for _, r := range []rect{n.box, n.label} {
			if r.w == 0 {
				continue
			}
			minX, minY = min(minX, r.x), min(minY, r.y)
			maxX, maxY = max(maxX, r.x+r.w), max(maxY, r.y+r.h)
		}
	}
	title := fmt.Sprintf("cluster %s seen from %s at %s", st.Cluster, st.Node, st.Now.UTC().Format("2006-01-02 15:04:05 UTC"))
	const titleH = 40.0
	width := max(maxX-minX+2*pad, textW(title, 14)+2*pad)
	for _, tl := range below {
		width = max(width, textW(clip(tl.text, maxText), 12)+2*pad)
	}
	dx := pad - minX + (width-2*pad-(maxX-minX))/2 // centre the picture
	dy := titleH - minY
	for i := range nodes {
		nodes[i].box.x += dx
		nodes[i].box.y += dy
		if nodes[i].label.w > 0 {
			nodes[i].label.x += dx
			nodes[i].label.y += dy
		}
	}
	belowY := maxY - minY + titleH + 2*pad
	height := belowY + float64(len(below))*lineH + 2*pad + lineH

	open(&b, opts, width, height, title)
	fmt.Fprintf(&b, `<text class="st-title" x="%s" y="24" font-size="14" font-weight="bold" fill="%s">%s</text>`+"\n", num(pad), colText, esc(title))

	// Lines first, so the boxes and labels sit on top of them.
	var self *nodeView
	for i := range nodes {
		if nodes[i].self {
			self = &nodes[i]
		}
	}
	if self != nil {
		for i := range nodes {
			if !nodes[i].self {
				drawPaths(&b, self, &nodes[i])
			}
		}
	}
	for i := range nodes {
		drawNode(&b, &nodes[i], boxW)
	}
	for i := range nodes {
		if !nodes[i].self && nodes[i].label.w > 0 {
			drawLabels(&b, &nodes[i])
		}
	}
	y := belowY
	for _, tl := range below {
		if tl.class == "st-heading" {
			y += lineH / 2
		}
		attrs := ""
		for _, k := range sortedKeys(tl.attr) {
			attrs += fmt.Sprintf(` %s="%s"`, k, esc(tl.attr[k]))
		}
		weight := ""
		if tl.bold {
			weight = ` font-weight="bold"`
		}
		fmt.Fprintf(&b, `<text class="%s"%s x="%s" y="%s" fill="%s"%s>%s`, tl.class, attrs, num(pad), num(y), tl.fill, weight, esc(clip(tl.text, maxText)))
		if len([]rune(tl.text)) > maxText {
			fmt.Fprintf(&b, `<title>%s</title>`, esc(tl.text))
		}
		b.WriteString("</text>\n")
		y += lineH
	}
	drawLegend(&b, y+lineH/2)
	b.WriteString("</svg>\n")
	return b.Bytes()
}

type textLine struct {
	text, fill, class string
	bold              bool
	attr              map[string]string
}

func open(b *bytes.Buffer, opts Options, w, h float64, label string) {
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg"`)
	if opts.ID != "" {
		fmt.Fprintf(b, ` id="%s"`, esc(opts.ID))
	}
	if opts.Class != "" {
		fmt.Fprintf(b, ` class="%s"`, esc(opts.Class))
	}
	fmt.Fprintf(b, ` width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12" role="img" aria-label="%s">`+"\n",
		math.Ceil(w), math.Ceil(h), math.Ceil(w), math.Ceil(h), esc(label))
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
}

// buildNodes derives what each box shows. Holders come from the groups'
// status (the same source as the console's table); a node's own Holds
// complete it.
func buildNodes(st *agent.Status) []nodeView {
	holders := map[string][]string{} // group -> holders
	var groupOrder []string
	for _, g := range st.Groups {
		groupOrder = append(groupOrder, g.Name)
		holders[g.Name] = slices.Clone(g.Holders)
	}
	for _, n := range st.Nodes {
		for _, g := range n.Holds {
			if _, ok := holders[g]; !ok {
				groupOrder = append(groupOrder, g)
			}
			if !slices.Contains(holders[g], n.Name) {
				holders[g] = append(holders[g], n.Name)
			}
		}
	}
	target := map[string]string{}
	hasTarget := map[string]bool{}
	for _, g := range st.Groups {
		target[g.Name], hasTarget[g.Name] = g.Target, true
	}
	rtt := map[string]float64{}
	for _, hs := range st.Heartbeats {
		for _, r := range hs.RTT {
			rtt[r.Peer+"/"+hs.Path] = r.SmoothedSeconds
		}
	}

	var nodes []nodeView
	seenSelf := false
	for _, n := range st.Nodes {
		nv := nodeView{st: n, self: n.Name == st.Node}
		seenSelf = seenSelf || nv.self
		nodes = append(nodes, nv)
	}
	if !seenSelf && st.Node != "" {
		// The status always lists this node; draw it anyway if it does not.
		nodes = append([]nodeView{{st: agent.NodeStatus{Name: st.Node, State: "unknown"}, self: true}}, nodes...)
	}
	for i := range nodes {
		nv := &nodes[i]
		n := nv.st
		stateLine := line{text: n.State, fill: stateText(n.State), bold: true}
		if !n.Since.IsZero() && !st.Now.IsZero() {
			stateLine.text += " for " + since(st.Now.Sub(n.Since))
		}
		nv.lines = append(nv.lines, stateLine)
		var modes []string
		if nv.self {
			modes = append(modes, "this node")
		}
		if n.Standby {
			modes = append(modes, "standby")
		}
		if n.Maintenance || (nv.self && st.Maintenance) {
			modes = append(modes, "maintenance")
		}
		if len(modes) > 0 {
			fill := colMuted
			if n.Standby || n.Maintenance || (nv.self && st.Maintenance) {
				fill = colWarning
			}
			nv.lines = append(nv.lines, line{text: strings.Join(modes, " · "), fill: fill})
		}
		for _, g := range groupOrder {
			hs := holders[g]
			if !slices.Contains(hs, n.Name) {
				continue
			}
			p := pill{group: g, text: g, kind: "held", title: g + " held by " + n.Name}
			switch {
			case len(hs) > 1:
				p.kind = "split-brain"
				p.text = g + " SPLIT BRAIN"
				p.title = g + " held by " + strings.Join(hs, " and ") + " at once (split brain)"
			case hasTarget[g] && target[g] != n.Name:
				p.kind = "moving"
				if target[g] == "" {
					p.text = g + " → stop"
					p.title = g + " held by " + n.Name + ", should run nowhere: stopping"
				} else {
					p.text = g + " → " + target[g]
					p.title = g + " held by " + n.Name + ", moving to " + target[g]
				}
			}
			nv.pills = append(nv.pills, p)
		}
		if nv.self {
			continue
		}
		for _, p := range n.Paths {
			pv := pathView{name: p.Name, state: "down"}
			switch {
			case p.Up:
				pv.state = "up"
			case p.LastSeen.IsZero() && n.State == "unknown":
				pv.state = "unknown" // never heard since this node started
			}
			parts := []string{pv.state}
			if pv.state == "down" {
				parts[0] = "DOWN"
				if p.Missed > 0 {
					parts = append(parts, fmt.Sprintf("%d missed", p.Missed))
				}
			}
			if secs, ok := rtt[n.Name+"/"+p.Name]; ok && pv.state == "up" {
				parts = append(parts, agent.FormatRTT(secs))
			}
			if pv.state != "unknown" {
				parts = append(parts, formatLoss(p.Loss)+" loss")
			}
			pv.label = p.Name + ": " + strings.Join(parts, ", ")
			nv.paths = append(nv.paths, pv)
		}
		if len(nv.paths) == 0 {
			nv.paths = []pathView{{name: "", state: "unknown", label: "no heartbeat path"}}
		}
		for _, p := range nv.paths {
			nv.labelW = max(nv.labelW, textW(p.label, 11)+12)
		}
	}
	return nodes
}

// boxSize makes every box the same size: as wide as the longest text
// allows (within bounds), as tall as the fullest box.
func boxSize(nodes []nodeView) (float64, float64) {
	w := minBoxW
	h := 0.0
	for _, n := range nodes {
		w = max(w, textW(n.st.Name, 13)+2*boxPad)
		for _, l := range n.lines {
			w = max(w, textW(l.text, 12)+2*boxPad)
		}
		for _, p := range n.pills {
			w = max(w, textW(p.text, 12)+4*boxPad)
		}
		h = max(h, boxPad+lineH+float64(len(n.lines))*lineH+float64(len(n.pills))*(pillH+pillGap)+boxPad)
	}
	return min(w, maxBoxW), h + 2
}

// layout places this node in the middle and its peers around it on an
// ellipse, so every path line is a spoke that crosses no other box. For
// each shape tried (how much wider than tall, turned by half a step) the
// ellipse grows until no two boxes or label blocks come closer than
// margin; the shape that shows largest on a console-sized area wins.
func layout(nodes []nodeView, boxW, boxH float64) {
	var peers []int
	for i := range nodes {
		nodes[i].box = rect{-boxW / 2, -boxH / 2, boxW, boxH}
		if !nodes[i].self {
			peers = append(peers, i)
		}
	}
	if len(peers) == 0 {
		return
	}
	selfIdx := slices.IndexFunc(nodes, func(n nodeView) bool { return n.self })
	k := float64(len(peers))
	place := func(start, aspect, at, r float64) {
		for j, i := range peers {
			a := start + 2*math.Pi*float64(j)/k
			cx, cy := aspect*r*math.Cos(a), r*math.Sin(a)
			nodes[i].box = rect{cx - boxW/2, cy - boxH/2, boxW, boxH}
			if selfIdx >= 0 {
				nodes[i].label = labelRect(&nodes[selfIdx], &nodes[i], at)
			}
		}
	}
	starts := []float64{0} // one or two peers: a row
	if len(peers) > 2 {
		starts = []float64{-math.Pi/2 + math.Pi/k, -math.Pi / 2}
	}
	type shape struct{ start, aspect, at, r float64 }
	var best shape
	bestScale := -1.0
	for _, start := range starts {
		for _, aspect := range []float64{1.2, 1.5, 1.8, 2.2, 2.6} {
			// Labels mid-spoke, or nearer the peer where spokes are
			// further apart.
			for _, at := range []float64{0.5, 0.62} {
				// Grow in big steps until the shape fits, then bisect
				// back to about the smallest size that does.
				lo, r := 0.0, boxW/2+40
				for range 60 {
					place(start, aspect, at, r)
					if disjoint(nodes) {
						break
					}
					lo, r = r, r*1.25
				}
				for range 6 {
					mid := (lo + r) / 2
					if place(start, aspect, at, mid); disjoint(nodes) {
						r = mid
					} else {
						lo = mid
					}
				}
				place(start, aspect, at, r)
				w, h := extent(nodes)
				if scale := min(fitW/w, fitH/h); scale > bestScale {
					bestScale, best = scale, shape{start, aspect, at, r}
				}
			}
		}
	}
	place(best.start, best.aspect, best.at, best.r)
}

// extent is the width and height the boxes and labels cover.
func extent(nodes []nodeView) (float64, float64) {
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, n := range nodes {
		for _, r := range []rect{n.box, n.label} {
			if r.w == 0 {
				continue
			}
			minX, minY = min(minX, r.x), min(minY, r.y)
			maxX, maxY = max(maxX, r.x+r.w), max(maxY, r.y+r.h)
		}
	}
	return maxX - minX, maxY - minY
}

func disjoint(nodes []nodeView) bool {
	rs := make([]rect, 0, 16)
	for _, n := range nodes {
		rs = append(rs, n.box)
		if n.label.w > 0 {
			rs = append(rs, n.label)
		}
	}
	for i := range rs {
		for j := i + 1; j < len(rs); j++ {
			if rs[i].overlaps(rs[j], margin) {
				return false
			}
		}
	}
	return true
}

// spoke is the visible part of the line between two boxes' centres
// shifted sideways by off: from where it leaves a to where it enters b.
func spoke(a, b rect, off float64) (x1, y1, x2, y2 float64) {
	ax, ay := a.center()
	bx, by := b.center()
	dx, dy := bx-ax, by-ay
	px, py := side(dx, dy)
	px, py = px*off, py*off
	ax, ay, bx, by = ax+px, ay+py, bx+px, by+py
	t1 := exitT(ax, ay, bx, by, a)
	t2 := 1 - exitT(bx, by, ax, ay, b)
	return ax + (bx-ax)*t1, ay + (by-ay)*t1, ax + (bx-ax)*t2, ay + (by-ay)*t2
}

// side is the unit vector across the direction (dx, dy) that points up
// (or right, across a vertical spoke): where a spoke's labels go and where
// its first path is drawn, so lines and labels come in the same order.
func side(dx, dy float64) (float64, float64) {
	l := math.Hypot(dx, dy)
	if l == 0 {
		return 0, -1
	}
	px, py := -dy/l, dx/l
	if py > 0 || (py == 0 && px < 0) {
		px, py = -px, -py
	}
	return px, py
}

// exitT is where (0..1) the segment from (x1,y1), inside r, leaves r.
func exitT(x1, y1, x2, y2 float64, r rect) float64 {
	t := 1.0
	dx, dy := x2-x1, y2-y1
	if dx > 0 {
		t = min(t, (r.x+r.w-x1)/dx)
	} else if dx < 0 {
		t = min(t, (r.x-x1)/dx)
	}
	if dy > 0 {
		t = min(t, (r.y+r.h-y1)/dy)
	} else if dy < 0 {
		t = min(t, (r.y-y1)/dy)
	}
	return max(t, 0)
}

// labelRect is the block of path labels, centred on the middle of the
// visible spoke from self to peer.
func labelRect(self, peer *nodeView, at float64) rect {
	w, h := peer.labelW, float64(len(peer.paths))*labelLine+6
	x1, y1, x2, y2 := spoke(self.box, peer.box, 0)
	mx, my := x1+(x2-x1)*at, y1+(y2-y1)*at
	// Beside the lines rather than over them: shift the block sideways
	// (upwards, or right of a vertical spoke) by its own half extent
	// across the spoke plus half the bundle's width.
	px, py := side(x2-x1, y2-y1)
	shift := math.Abs(px)*w/2 + math.Abs(py)*h/2 + float64(len(peer.paths)-1)/2*pathSep + 4
	mx, my = mx+px*shift, my+py*shift
	return rect{mx - w/2, my - h/2, w, h}
}

func drawPaths(b *bytes.Buffer, self, peer *nodeView) {
	m := len(peer.paths)
	for j, p := range peer.paths {
		off := (float64(m-1)/2 - float64(j)) * pathSep
		x1, y1, x2, y2 := spoke(self.box, peer.box, off)
		colour, dash := colUp, ""
		switch p.state {
		case "down":
			colour, dash = colDown, ` stroke-dasharray="8 5"`
		case "unknown":
			colour, dash = colUnknown, ` stroke-dasharray="3 4"`
		}
		fmt.Fprintf(b, `<line class="st-path st-%s" data-peer="%s" data-path="%s" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="3"%s><title>%s</title></line>`+"\n",
			p.state, esc(peer.st.Name), esc(p.name), num(x1), num(y1), num(x2), num(y2), colour, dash,
			esc(self.st.Name+" → "+peer.st.Name+": "+p.label))
	}
}

func drawLabels(b *bytes.Buffer, peer *nodeView) {
	r := peer.label
	fmt.Fprintf(b, `<rect class="st-label-box" x="%s" y="%s" width="%s" height="%s" rx="4" fill="#ffffff" fill-opacity="0.92" stroke="#e5e7eb"/>`+"\n",
		num(r.x), num(r.y), num(r.w), num(r.h))
	for j, p := range peer.paths {
		fill := colUpText
		switch p.state {
		case "down":
			fill = colDownText
		case "unknown":
			fill = colUnkText
		}
		fmt.Fprintf(b, `<text class="st-path-label st-%s" data-peer="%s" data-path="%s" x="%s" y="%s" font-size="11" text-anchor="middle" fill="%s">%s</text>`+"\n",
			p.state, esc(peer.st.Name), esc(p.name), num(r.x+r.w/2), num(r.y+3+labelLine*float64(j)+11), fill, esc(p.label))
	}
}

func drawNode(b *bytes.Buffer, n *nodeView, boxW float64) {
	classes := []string{"st-node", "st-" + classWord(n.st.State)}
	if n.self {
		classes = append(classes, "st-self")
	}
	if n.st.Standby {
		classes = append(classes, "st-standby")
	}
	if n.st.Maintenance {
		classes = append(classes, "st-maintenance")
	}
	fill, stroke := "#f3f4f6", colUnknown
	switch n.st.State {
	case "alive":
		fill, stroke = "#f0fdf4", colUp
	case "dead":
		fill, stroke = "#fef2f2", colDown
	}
	width, dash := "1.5", ""
	if n.self {
		stroke, width = colSelf, "3"
	}
	if n.st.Standby || n.st.Maintenance {
		dash = ` stroke-dasharray="7 4"`
	}
	r := n.box
	fmt.Fprintf(b, `<g class="%s" data-node="%s">`+"\n", strings.Join(classes, " "), esc(n.st.Name))
	fmt.Fprintf(b, `<rect class="st-box" x="%s" y="%s" width="%s" height="%s" rx="6" fill="%s" stroke="%s" stroke-width="%s"%s><title>%s</title></rect>`+"\n",
		num(r.x), num(r.y), num(r.w), num(r.h), fill, stroke, width, dash, esc(nodeTitle(n)))
	maxChars := int((boxW - 2*boxPad) / charW)
	y := r.y + boxPad + 13
	fmt.Fprintf(b, `<text class="st-node-name" x="%s" y="%s" font-size="13" font-weight="bold" fill="%s">%s</text>`+"\n",
		num(r.x+boxPad), num(y), colText, esc(clip(n.st.Name, maxChars-1)))
	for _, l := range n.lines {
		y += lineH
		weight := ""
		if l.bold {
			weight = ` font-weight="bold"`
		}
		fmt.Fprintf(b, `<text class="st-node-line" x="%s" y="%s" fill="%s"%s>%s</text>`+"\n", num(r.x+boxPad), num(y), l.fill, weight, esc(clip(l.text, maxChars)))
	}
	y += 8
	for _, p := range n.pills {
		fill, line, text := colGroupFill, colGroupLine, colText
		switch p.kind {
		case "split-brain":
			fill, line, text = colSplit, "#7f1d1d", "#ffffff"
		case "moving":
			fill, line = colMoveFill, colMoveLine
		}
		fmt.Fprintf(b, `<g class="st-group st-%s" data-group="%s"><title>%s</title>`, p.kind, esc(p.group), esc(p.title))
		fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" rx="9" fill="%s" stroke="%s"/>`,
			num(r.x+boxPad), num(y), num(r.w-2*boxPad), num(pillH), fill, line)
		fmt.Fprintf(b, `<text x="%s" y="%s" fill="%s">%s</text></g>`+"\n", num(r.x+2*boxPad), num(y+13), text, esc(clip(p.text, maxChars-2)))
		y += pillH + pillGap
	}
	b.WriteString("</g>\n")
}

func nodeTitle(n *nodeView) string {
	s := n.st.Name + ": " + n.st.State
	if n.self {
		s += " (this node)"
	}
	if n.st.Standby {
		s += ", standby"
	}
	if n.st.Maintenance {
		s += ", maintenance"
	}
	if len(n.st.Holds) > 0 {
		s += ", holds " + strings.Join(n.st.Holds, ", ")
	}
	return s
}

// unplacedGroups lists the groups no drawn node holds, with why.
func unplacedGroups(st *agent.Status, nodes []nodeView) []textLine {
	drawn := map[string]bool{}
	for _, n := range nodes {
		for _, p := range n.pills {
			drawn[p.group] = true
		}
	}
	var out []textLine
	for _, g := range st.Groups {
		if drawn[g.Name] {
			continue
		}
		why := g.Reason
		state := "stopped"
		if g.Wait != "" {
			state, why = "waiting", g.Wait
		}
		text := g.Name + ": " + state
		if g.Target != "" {
			text += " (should run on " + g.Target + ")"
		}
		if why != "" {
			text += ": " + why
		}
		if len(g.Holders) > 0 { // held by a node this status does not list
			text += " [held by " + strings.Join(g.Holders, ", ") + "]"
		}
		out = append(out, textLine{text: text, fill: colWarning, class: "st-unplaced st-" + state, attr: map[string]string{"data-group": g.Name}})
	}
	return out
}

func drawLegend(b *bytes.Buffer, y float64) {
	x := pad
	item := func(colour, dash, text string) {
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="3"%s/>`, num(x), num(y-4), num(x+24), num(y-4), colour, dash)
		fmt.Fprintf(b, `<text x="%s" y="%s" fill="%s">%s</text>`+"\n", num(x+30), num(y), colMuted, esc(text))
		x += 30 + textW(text, 12) + 18
	}
	b.WriteString(`<g class="st-legend">`)
	item(colUp, "", "path up")
	item(colDown, ` stroke-dasharray="8 5"`, "path down")
	item(colUnknown, ` stroke-dasharray="3 4"`, "path unknown")
	fmt.Fprintf(b, `<rect x="%s" y="%s" width="24" height="12" rx="6" fill="%s"/><text x="%s" y="%s" fill="%s">split brain</text>`,
		num(x), num(y-10), colSplit, num(x+30), num(y), colMuted)
	x += 30 + textW("split brain", 12) + 18
	fmt.Fprintf(b, `<rect x="%s" y="%s" width="24" height="12" rx="6" fill="%s" stroke="%s"/><text x="%s" y="%s" fill="%s">moving</text>`,
		num(x), num(y-10), colMoveFill, colMoveLine, num(x+30), num(y), colMuted)
	b.WriteString("</g>\n")
}

func stateText(state string) string {
	switch state {
	case "alive":
		return colUpText
	case "dead":
		return colDownText
	}
	return colUnkText
}

// classWord keeps a value usable as a class name (states and severities
// are short words; anything else becomes "other").
func classWord(s string) string {
	s = strings.ToLower(s)
	if s == "" {
		return "other"
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return "other"
		}
	}
	return s
}

// esc escapes text for XML content and attributes; characters XML cannot
// hold become U+FFFD.
func esc(s string) string {
	var sb strings.Builder
	_ = xml.EscapeText(&sb, []byte(s)) // a strings.Builder does not fail
	return sb.String()
}

func clip(s string, n int) string {
	r := []rune(s)
	if n < 2 || len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func textW(s string, size float64) float64 {
	return float64(len([]rune(s))) * charW * size / 12
}

func num(f float64) string { return fmt.Sprintf("%.1f", f) }

// formatLoss keeps one decimal only where it matters (0.4%, but 25%).
func formatLoss(share float64) string {
	pct := 100 * share
	if pct > 0 && pct < 10 {
		return fmt.Sprintf("%.1f%%", pct)
	}
	return fmt.Sprintf("%.0f%%", pct)
}

// since renders how long a state has lasted, coarsely: "42s", "7m", "3h".
func since(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
