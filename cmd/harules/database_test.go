package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDatabaseRejoinUsageErrors(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.star")
	if err := os.WriteFile(pol, []byte(`cluster(name = "c")
node("n1", address = "198.51.100.1")
group("db", resources = [
    database("pg", dsn = "host=/tmp port=1", data_dir = "/nonexistent/pg"),
    database("my", engine = "mysql", dsn = "root@unix(/tmp/x.sock)/"),
])
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"database", "rejoin", "pg"}, "give --primary"},
		{[]string{"database", "rejoin", "nope", "--primary", "host=x", "--policy", pol}, `no database("nope")`},
		{[]string{"database", "rejoin", "my", "--primary", "host=x", "--policy", pol}, `--primary "host=x"`},
		{[]string{"database", "rejoin", "my", "--primary", "repl:pw@unix(/tmp/x.sock)/", "--policy", pol}, "over TCP"},
		{[]string{"db", "status"}, "want rejoin RESOURCE"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"harules"}, c.args...), &out, &errOut)
		if code != exitUsage || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: exit %d, %q; want exit %d mentioning %q", c.args, code, errOut.String(), exitUsage, c.want)
		}
	}
}
