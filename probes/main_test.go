package probes

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeTemplates()
	os.Exit(code)
}
