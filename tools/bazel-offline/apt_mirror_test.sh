#!/usr/bin/env bash
# Tests tools/bazel-offline/apt-mirror on apt configurations written here.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mirror=$here/apt-mirror
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# expect NAME WANT: apt-mirror on $work/NAME prints WANT and exits 0, or,
# with WANT "", prints nothing and exits 1.
expect() {
  local name=$1 want=$2 got rc=0
  got=$("$mirror" "$work/$name") || rc=$?
  if [ -z "$want" ] && [ "$rc" = 1 ] && [ -z "$got" ]; then echo "ok   $name: none"; return; fi
  if [ -n "$want" ] && [ "$rc" = 0 ] && [ "$got" = "$want" ]; then echo "ok   $name: $got"; return; fi
  echo "FAIL $name: got \"$got\" (exit $rc), want \"$want\""
  failures=$((failures + 1))
}

# conf NAME FILE CONTENT: writes $work/NAME/FILE.
conf() { mkdir -p "$(dirname "$work/$1/$2")"; printf '%s' "$3" >"$work/$1/$2"; }

# deb822, as Debian 12+ ships it: the security archive comes second.
conf deb822 sources.list.d/debian.sources 'Types: deb
# http://archive.example/snapshot/20250520T000000Z
URIs: http://archive.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://archive.example/debian-security
Suites: bookworm-security
Components: main
'
expect deb822 http://archive.example/debian

# The security stanza first, a deb-src stanza, a disabled one: all skipped.
conf deb822-order sources.list.d/a.sources 'Types: deb
URIs: http://security.example/debian-security/
Suites: trixie-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: trixie
Components: main

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: trixie
Components: main
'
conf deb822-order sources.list.d/b.sources 'Types: deb deb-src
URIs: http://mirror.example/debian/
  http://second.example/debian
Suites: trixie
Components: main
'
expect deb822-order http://mirror.example/debian

# The one-line format, with options, after comments and deb-src lines.
conf one-line sources.list '# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian bookworm main contrib
'
expect one-line http://mirror.example/debian

# sources.list.d/*.list is read too, and before sources.list.
conf list-d sources.list.d/mirror.list 'deb http://listd.example/debian sid main
'
conf list-d sources.list 'deb http://main.example/debian sid main
'
expect list-d http://listd.example/debian

# Files apt ignores (other suffixes) are ignored.
conf ignored sources.list.d/nodesource.sources.disabled 'Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
'
expect ignored ""

# Nothing configured, or no release suite: none.
mkdir -p "$work/empty"
expect empty ""
conf security-only sources.list 'deb http://security.example/debian-security bookworm-security main
'
expect security-only ""

[ "$failures" = 0 ] || { echo "$failures failure(s)"; exit 1; }
