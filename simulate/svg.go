package simulate

import (
	"fmt"
	"html"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/harules/harules/engine"
)

// WriteSVG draws the run as a standalone SVG timeline: one lane per node
// (up or down), one per heartbeat path as each node heard its peers, one per
// group coloured by the node holding it (red where two nodes held it), with
// actions and alerts as marks whose tooltips give the reason. A policy
// change can then be reviewed as a picture.
func WriteSVG(w io.Writer, r *Result) error {
	const (
		left, right, top = 230.0, 30.0, 50.0
		width            = 1100.0
		laneH, gap       = 22.0, 8.0
	)
	span := time.Duration(r.Duration)
	if span <= 0 {
		span = time.Second
	}
	x := func(t time.Time) float64 {
		d := t.Sub(r.Start)
		if d < 0 {
			d = 0
		}
		if d > span {
			d = span
		}
		return left + (width-left-right)*float64(d)/float64(span)
	}
	end := r.Start.Add(span)

	nodes, groups := r.nodeNames(), r.groupNames()
	palette := []string{"#3b82f6", "#f59e0b", "#10b981", "#8b5cf6", "#ec4899", "#14b8a6"}
	color := map[string]string{}
	for i, n := range nodes {
		color[n] = palette[i%len(palette)]
	}

	type seg struct {
		from, to time.Time
		fill     string
		title    string
	}
	type lane struct {
		label string
		segs  []seg
		marks []engine.Record
	}
	var lanes []lane

	// Node lanes: up from the start (or boot) until a crash.
	for _, n := range nodes {
		l := lane{label: n}
		up, since := true, r.Start
		for _, rec := range r.Records {
			if rec.Node != n || rec.Kind != engine.RecEvent {
				continue
			}
			switch {
			case strings.HasPrefix(rec.Text, "crash") && up:
				l.segs = append(l.segs, seg{since, rec.At, "#86efac", n + " up"})
				up, since = false, rec.At
			case rec.Text == "boot" && !up:
				l.segs = append(l.segs, seg{since, rec.At, "#d1d5db", n + " down"})
				up, since = true, rec.At
			}
		}
		if up {
			l.segs = append(l.segs, seg{since, end, "#86efac", n + " up"})
		} else {
			l.segs = append(l.segs, seg{since, end, "#d1d5db", n + " down"})
		}
		for _, rec := range r.Records {
			if rec.Node == n && (rec.Kind == engine.RecAlert || rec.Kind == engine.RecEvent) {
				l.marks = append(l.marks, rec)
			}
		}
		lanes = append(lanes, l)
	}

	// Path lanes: what each node heard from each peer on each path.
	type pathKey struct{ observer, path, peer string }
	pathState := map[pathKey][]engine.Record{}
	var pathKeys []pathKey
	for _, rec := range r.Records {
		if rec.Kind != engine.RecPath {
			continue
		}
		var path, peer, state string
		if _, err := fmt.Sscanf(rec.Text, "path %s to %s %s", &path, &peer, &state); err != nil {
			continue
		}
		k := pathKey{rec.Node, path, peer}
		if _, ok := pathState[k]; !ok {
			pathKeys = append(pathKeys, k)
		}
		pathState[k] = append(pathState[k], rec)
	}
	sort.Slice(pathKeys, func(i, j int) bool {
		a, b := pathKeys[i], pathKeys[j]
		if a.observer != b.observer {
			return a.observer < b.observer
		}
		if a.path != b.path {
			return a.path < b.path
		}
		return a.peer < b.peer
	})
	for _, k := range pathKeys {
		l := lane{label: fmt.Sprintf("%s hears %s (%s)", k.observer, k.peer, k.path)}
		since, up := r.Start, false
		for _, rec := range pathState[k] {
			fill := "#fca5a5"
			if up {
				fill = "#a7f3d0"
			}
			if rec.At.After(since) {
				l.segs = append(l.segs, seg{since, rec.At, fill, ""})
			}
			since, up = rec.At, strings.HasSuffix(rec.Text, " up")
		}
		fill := "#fca5a5"
		if up {
			fill = "#a7f3d0"
		}
		l.segs = append(l.segs, seg{since, end, fill, ""})
		lanes = append(lanes, l)
	}

	// Group lanes: who held the group.
	dualAt := func(g string, t time.Time) bool {
		for _, d := range r.DualOwners {
			if d.Group == g && t.Sub(r.Start) >= time.Duration(d.Start) && t.Sub(r.Start) < time.Duration(d.End) {
				return true
			}
		}
		return false
	}
	for _, g := range groups {
		l := lane{label: "group " + g}
		var holders []string
		since := r.Start
		flush := func(to time.Time) {
			if !to.After(since) {
				return
			}
			fill, title := "#ffffff", g+" held by nobody"
			switch {
			case len(holders) > 1 || dualAt(g, since):
				fill, title = "#dc2626", g+" held by "+strings.Join(holders, "+")+" (SPLIT BRAIN)"
			case len(holders) == 1:
				fill, title = color[holders[0]], g+" held by "+holders[0]
			}
			l.segs = append(l.segs, seg{since, to, fill, title})
		}
		for _, rec := range r.Records {
			if rec.Kind == RecOwner && rec.Group == g {
				flush(rec.At)
				holders = parseHolders(rec.Text, g)
				since = rec.At
			}
			if rec.Kind == engine.RecAction && rec.Group == g {
				l.marks = append(l.marks, rec)
			}
		}
		flush(end)
		lanes = append(lanes, l)
	}

	height := top + float64(len(lanes))*(laneH+gap) + 60
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	verdict := "PASS"
	if !r.OK {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, `<text x="10" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", html.EscapeString(fmt.Sprintf("%s: %s (%s)", r.Name, verdict, r.Scenario)))
	// Time axis.
	axisY := top + float64(len(lanes))*(laneH+gap) + 5
	step := niceStep(span)
	for t := time.Duration(0); t <= span; t += step {
		xx := x(r.Start.Add(t))
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e7eb"/>`+"\n", xx, top-5, xx, axisY)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#4b5563">%s</text>`+"\n", xx, axisY+15, t)
	}
	for i, l := range lanes {
		y := top + float64(i)*(laneH+gap)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-8, y+laneH*0.7, html.EscapeString(l.label))
		fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#9ca3af"/>`+"\n", left, y, width-left-right, laneH)
		for _, s := range l.segs {
			x1, x2 := x(s.from), x(s.to)
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s">`, x1, y, max(x2-x1, 0.5), laneH, s.fill)
			if s.title != "" {
				fmt.Fprintf(w, `<title>%s from %s to %s</title>`, html.EscapeString(s.title), s.from.Sub(r.Start), s.to.Sub(r.Start))
			}
			fmt.Fprintln(w, `</rect>`)
		}
		for _, m := range l.marks {
			xx := x(m.At)
			stroke := "#111827"
			if m.Error != "" || m.Kind == engine.RecAlert {
				stroke = "#b91c1c"
			}
			title := fmt.Sprintf("%s %s %s: %s", Offset(r.Start, m.At), m.Node, m.Kind, m.Text)
			if m.Reason != "" {
				title += " because " + m.Reason
			}
			if m.Error != "" {
				title += " FAILED: " + m.Error
			}
			fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"><title>%s</title></line>`+"\n",
				xx, y-3, xx, y+laneH+3, stroke, html.EscapeString(title))
		}
	}
	// Legend.
	lx := left
	for _, n := range nodes {
		fmt.Fprintf(w, `<rect x="%.1f" y="28" width="12" height="12" fill="%s"/><text x="%.1f" y="38">%s holds</text>`+"\n", lx, color[n], lx+16, html.EscapeString(n))
		lx += 110
	}
	fmt.Fprintf(w, `<rect x="%.1f" y="28" width="12" height="12" fill="#dc2626"/><text x="%.1f" y="38">two holders</text>`+"\n", lx, lx+16)
	fmt.Fprintf(w, `<rect x="%.1f" y="28" width="12" height="12" fill="#fca5a5"/><text x="%.1f" y="38">path down</text>`+"\n", lx+110, lx+126)
	_, err := fmt.Fprintln(w, `</svg>`)
	return err
}

func parseHolders(text, group string) []string {
	s := strings.TrimPrefix(text, group+" held by ")
	if s == "nobody" || s == text {
		return nil
	}
	return strings.Split(s, "+")
}

func niceStep(span time.Duration) time.Duration {
	for _, s := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
		time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour} {
		if span/s <= 12 {
			return s
		}
	}
	return 24 * time.Hour
}

func (r *Result) nodeNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, rec := range r.Records {
		if rec.Node != "" && rec.Node != "cluster" && !seen[rec.Node] {
			seen[rec.Node] = true
			out = append(out, rec.Node)
		}
	}
	sort.Strings(out)
	return out
}

func (r *Result) groupNames() []string {
	return sortedKeys(r.FinalPlacement)
}
