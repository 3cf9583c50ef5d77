// Command package builds the Debian package of harules from a built harules
// binary with nfpm (used as a library). It is its own Go module so that nfpm
// and its dependencies stay out of harules' go.mod and binary; run it through
// scripts/package.sh, which builds the binary and picks the version.
//
// What goes in is declared in contrib/debian/nfpm.yaml. This program makes
// the generated parts first, in a staging directory: the manual page and the
// completion scripts (asked from the binary itself: `harules man`,
// `harules completion SHELL`), the systemd unit of contrib/systemd with the
// package's /usr/bin paths, and the example policy.
package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the "deb" packager
	"github.com/goreleaser/nfpm/v2/files"
)

func main() {
	var o options
	flag.StringVar(&o.binary, "binary", "", "the harules binary to package (required)")
	flag.StringVar(&o.version, "version", "", "the Debian version, e.g. 1.2.0 or 0.0.0+git1234.gabcdef0 (required)")
	flag.StringVar(&o.arch, "arch", runtime.GOARCH, "Debian architecture of the binary")
	flag.StringVar(&o.out, "out", "dist", "directory for the .deb")
	flag.StringVar(&o.root, "root", ".", "the repository's root (nfpm.yaml paths are relative to it)")
	flag.Parse()
	if o.binary == "" || o.version == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	target, err := build(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "package:", err)
		os.Exit(1)
	}
	fmt.Println(target)
}

type options struct {
	binary, version, arch, out, root string
}

// build writes the .deb into o.out and returns its path.
func build(o options) (string, error) {
	root, err := filepath.Abs(o.root)
	if err != nil {
		return "", err
	}
	stage, err := os.MkdirTemp("", "harules-package-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	if err := prepareStage(stage, root, o.binary); err != nil {
		return "", err
	}

	env := map[string]string{"VERSION": o.version, "ARCH": o.arch, "STAGE": stage}
	// nfpm resolves relative source paths against the working directory.
	if err := os.Chdir(root); err != nil {
		return "", err
	}
	config, err := nfpm.ParseFileWithEnvMapping(filepath.Join(root, "contrib/debian/nfpm.yaml"), func(k string) string { return env[k] })
	if err != nil {
		return "", fmt.Errorf("contrib/debian/nfpm.yaml: %w", err)
	}
	info, err := config.Get("deb")
	if err != nil {
		return "", err
	}
	info = nfpm.WithDefaults(info)
	info.License = license(root)
	if _, err := os.Stat(filepath.Join(root, "LICENSE")); err == nil {
		// Debian's place for the license; added once the repository has one.
		info.Contents = append(info.Contents, &files.Content{Source: "LICENSE", Destination: "/usr/share/doc/harules/copyright",
			FileInfo: &files.ContentFileInfo{Mode: 0o644}})
	}
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", err
	}
	packager, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	out := o.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	target := filepath.Join(out, packager.ConventionalFileName(info))
	f, err := os.Create(target)
	if err != nil {
		return "", err
	}
	info.Target = target
	err = packager.Package(info, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(target)
		return "", fmt.Errorf("build %s: %w", target, err)
	}
	return target, nil
}

// prepareStage puts the files nfpm.yaml takes from ${STAGE} into stage.
func prepareStage(stage, root, binary string) error {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(stage, "harules"), bin, 0o755); err != nil {
		return err
	}
	run := func(args ...string) ([]byte, error) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(binary, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s %s: %w: %s", binary, strings.Join(args, " "), err, stderr.Bytes())
		}
		return stdout.Bytes(), nil
	}

	man, err := run("man")
	if err != nil {
		return err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression) // no name, no time: reproducible
	zw.Write(man)
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(stage, "harules.1.gz"), gz.Bytes(), 0o644); err != nil {
		return err
	}
	for shell, name := range map[string]string{"bash": "harules.bash", "zsh": "_harules", "fish": "harules.fish"} {
		script, err := run("completion", shell)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(stage, name), script, 0o644); err != nil {
			return err
		}
	}

	unit, err := os.ReadFile(filepath.Join(root, "contrib/systemd/harules.service"))
	if err != nil {
		return err
	}
	unit, err = packagedUnit(unit)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(stage, "harules.service"), unit, 0o644); err != nil {
		return err
	}

	example, err := os.ReadFile(filepath.Join(root, exampleSource))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(stage, "policy.star.example"), append([]byte(exampleHeader), example...), 0o644)
}

// packagedUnit turns contrib/systemd/harules.service into the package's unit:
// the binary is /usr/bin/harules, and the header says how to start it.
func packagedUnit(unit []byte) ([]byte, error) {
	s := string(unit)
	if !strings.Contains(s, "/usr/local/bin/harules") {
		return nil, errors.New("contrib/systemd/harules.service: no /usr/local/bin/harules to replace")
	}
	s = strings.ReplaceAll(s, "/usr/local/bin/harules", "/usr/bin/harules")
	// Replace the leading comment (manual install steps).
	i := strings.Index(s, "[Unit]")
	if i < 0 {
		return nil, errors.New("contrib/systemd/harules.service: no [Unit] section")
	}
	return []byte(unitHeader + s[i:]), nil
}

const unitHeader = `# harules node agent, from the Debian package. It starts only once
# /etc/harules/policy.star exists; see /usr/share/doc/harules/README.Debian:
# write the policy and the cluster secret (harules secret new, the same file
# on every node), harules check /etc/harules/policy.star, then
# systemctl enable --now harules
`

// exampleSource is the policy shipped as /etc/harules/policy.star.example;
// its scenarios run as tests (examples/examples_test.go).
const exampleSource = "examples/web-active-standby/policy.star"

const exampleHeader = `# Example harules policy installed by the Debian package (a copy of
# examples/web-active-standby/policy.star). harules does not use this file:
# the agent reads /etc/harules/policy.star, and the service starts only once
# that file exists and it is enabled. To use this example:
#
#   cp /etc/harules/policy.star.example /etc/harules/policy.star
#   edit node names (host names, or run with --node), addresses, the VIP and
#   its interface, the gateway and the service command
#   harules secret new        (on one node; copy /etc/harules/secret to all)
#   harules check /etc/harules/policy.star
#   systemctl enable --now harules
#
`

// license names the package's license once the repository has a LICENSE file.
func license(root string) string {
	data, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err == nil && bytes.Contains(data, []byte("Apache License")) && bytes.Contains(data, []byte("Version 2.0")) {
		return "Apache-2.0"
	}
	return ""
}
