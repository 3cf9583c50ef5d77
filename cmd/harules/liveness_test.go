package main

import (
	"testing"

	"github.com/harules/harules/agent"
)

// The supervisor exits with its agent's status: the code --help documents
// for a stuck agent must be the one the agent exits with.
func TestWedgedExitCodeMatchesTheAgent(t *testing.T) {
	if exitWedged != agent.WedgedExitCode {
		t.Fatalf("--help documents %d, the agent exits with %d", exitWedged, agent.WedgedExitCode)
	}
}
