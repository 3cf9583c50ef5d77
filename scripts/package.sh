#!/usr/bin/env bash
# Builds the Debian package of harules: dist/harules_VERSION_ARCH.deb (the
# path is printed last). Needs only Go; nfpm (the .deb writer) is a Go
# library in the separate module scripts/package, so it never becomes a
# dependency of harules itself.
#
# Usage: scripts/package.sh [VERSION]
# VERSION defaults to one derived from `git describe --tags`: tag v1.2.0 gives
# 1.2.0, 5 commits after it 1.2.0+5.gabcdef0; with no tag 0.0.0+gitN.gHASH
# (N = number of commits, so later builds sort higher); ".dirty" is appended
# for uncommitted changes; outside git: 0.0.0+unknown.
#
# Then, as root: apt-get install ./dist/harules_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:-}
if [ -z "$version" ]; then
  if desc=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null); then
    # v1.2.0[-5-gabcdef0][-dirty]
    version=$(sed -E 's/^v//; s/-([0-9]+)-(g[0-9a-f]+)/+\1.\2/; s/-dirty$/.dirty/' <<<"$desc")
    case $version in *+*) ;; *.dirty) version=${version%.dirty}+dirty ;; esac
  elif hash=$(git rev-parse --short=7 HEAD 2>/dev/null); then
    version="0.0.0+git$(git rev-list --count HEAD).g$hash"
    git diff --quiet HEAD 2>/dev/null || version="$version.dirty"
  else
    version=0.0.0+unknown
  fi
fi
case $version in [0-9]*) ;; *) echo "package.sh: version $version must start with a digit (Debian)" >&2; exit 2 ;; esac

arch=$(go env GOARCH)
# Files in the package carry the commit's time, so a rebuild is identical.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
  export SOURCE_DATE_EPOCH
fi
# dist/ keeps only the newest package, so ./dist/harules_*.deb names one file.
rm -f dist/harules_*.deb
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

revision=$(git rev-parse HEAD 2>/dev/null || true)
dirty=false
case $version in *dirty*) dirty=true ;; esac
build_time=$(date -u +%Y-%m-%dT%H:%M:%SZ)
vpkg=github.com/harules/harules/internal/version
# -X of a variable a build does not have is ignored, so both the old
# main.version and internal/version are set.
ldflags="-s -w -X main.version=$version -X $vpkg.Version=$version -X $vpkg.BuildTime=$build_time -X $vpkg.Dirty=$dirty"
[ -n "$revision" ] && ldflags="$ldflags -X $vpkg.Revision=$revision"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$work/harules" ./cmd/harules
go -C scripts/package build -o "$work/package" .
"$work/package" -binary "$work/harules" -version "$version" -arch "$arch" -out dist -root .
