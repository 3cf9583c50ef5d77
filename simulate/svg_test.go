package simulate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/harules/harules/rules"
	"github.com/harules/harules/simulate"
)

func runScenario(t *testing.T, policyFile, scenario string) *simulate.Result {
	t.Helper()
	ctx := context.Background()
	p, err := rules.Load(ctx, policyFile, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sf := filepath.Join(t.TempDir(), "s.star")
	if err := os.WriteFile(sf, []byte(scenario), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := simulate.LoadScenario(ctx, sf, p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := simulate.Run(ctx, p, policyFile, sc, simulate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSVGIsWellFormedAndShowsSplitBrain(t *testing.T) {
	res := runScenario(t, "../examples/web-active-standby/policy.star", `
scenario(name = "partition", duration = "30s")
at("5s", link_down())
at("15s", link_up())
`)
	if len(res.DualOwners) == 0 {
		t.Fatal("scenario without a guard should produce two holders; the test premise is wrong")
	}
	var buf bytes.Buffer
	if err := simulate.WriteSVG(&buf, res); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
	svg := buf.String()
	for _, want := range []string{">node1<", ">node2<", ">group web<", "node1 hears node2 (lan)", "SPLIT BRAIN", "#dc2626"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestSVGOfCleanFailoverHasNoSplitBrain(t *testing.T) {
	res := runScenario(t, "../examples/web-active-standby/policy.star", `
scenario(name = "crash", duration = "20s")
at("5s", crash("node1"))
`)
	var buf bytes.Buffer
	if err := simulate.WriteSVG(&buf, res); err != nil {
		t.Fatal(err)
	}
	svg := buf.String()
	if strings.Contains(svg, "SPLIT BRAIN") {
		t.Error("a clean failover is drawn with two holders")
	}
	for _, want := range []string{"web held by node1", "web held by node2", "node1 down"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestResultJSONRoundTrip(t *testing.T) {
	res := runScenario(t, "../examples/web-active-standby/policy.star", `
scenario(name = "crash", duration = "20s")
at("5s", crash("node1"))
`)
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back simulate.Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("a Result does not decode from its own JSON: %v", err)
	}
	if back.Duration != res.Duration || len(back.Outages) != len(res.Outages) || back.Outages[0].End != res.Outages[0].End {
		t.Errorf("round trip changed the result: %+v vs %+v", back.Outages, res.Outages)
	}
}
