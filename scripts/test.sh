#!/usr/bin/env bash
# Runs the whole harules test suite on a fresh Debian machine.
#
# It first installs what the tests need: every file in scripts/deps.d/*.txt
# lists Debian packages (one per line, '#' comments allowed) that some test
# uses; missing ones are installed with apt-get. Then it downloads the Go
# modules and runs vet and the tests. Tests that need root (network
# namespaces, loop devices) fail loudly when not run as root.
#
# Usage: scripts/test.sh [go test flags...]   e.g. scripts/test.sh -run Simulate ./engine/...
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for f in scripts/deps.d/*.txt; do
  [ -e "$f" ] || continue
  while read -r pkg _; do
    [ -z "$pkg" ] && continue
    case "$pkg" in \#*) continue ;; esac
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
  done < "$f"
done
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing Debian packages the tests need: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

go mod download
go vet ./...
# The Debian packager is its own Go module (nfpm stays out of harules'
# dependencies); test/e2epkg builds it.
(cd scripts/package && go mod download && go vet ./...)
if [ $# -eq 0 ]; then set -- ./...; fi
go test -count=1 -timeout 40m "$@"
