#!/usr/bin/env bash
# Installs the SeaweedFS binary (weed) that the S3 storage tests run
# against, and prints its path. The build takes minutes, so the binary is
# cached (SMP_WEED_CACHE, default the user's cache dir) and reused while it
# is there. `go install module@version` refuses this module (its go.mod has
# replace directives), so the module is downloaded through the module proxy
# with `go mod download`, copied, and built inside the copy.
set -euo pipefail
version=v0.0.0-20261109003541-7506e5f91cd6
cache=${SMP_WEED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smp-seaweedfs}
bin=$cache/weed-$version
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
dir=$(go mod download -json "github.com/seaweedfs/seaweedfs@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
  echo "seaweedfs.sh: go mod download did not give the module's directory" >&2
  exit 1
fi
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$dir/." "$work/src"
chmod -R u+w "$work/src"
start=$(date +%s)
(cd "$work/src" && GOFLAGS=-mod=mod go build -o "$work/weed" ./weed) >&2
mv "$work/weed" "$bin.tmp" && mv "$bin.tmp" "$bin"
echo "seaweedfs.sh: built weed in $(( $(date +%s) - start ))s" >&2
echo "$bin"
