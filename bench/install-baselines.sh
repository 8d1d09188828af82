#!/usr/bin/env bash
# Installs the baseline tools `smp bench run` compares smp with: restic and
# borg (deduplicating backup) and zstd (for the tar | zstd baseline). cp,
# tar and du come with coreutils and tar. Idempotent: installs only the
# packages whose tool is not already on PATH, and does nothing when all
# are. Debian/Ubuntu; run as root or with sudo available.
set -euo pipefail

# tool on PATH -> Debian package that provides it
declare -A package=([restic]=restic [borg]=borgbackup [zstd]=zstd)

versions() {
	echo "$(restic version 2>/dev/null | head -n1); $(borg --version 2>/dev/null | head -n1); $(zstd --version 2>/dev/null | head -n1)"
}

missing=()
for tool in restic borg zstd; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("${package[$tool]}")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "baselines already installed: $(versions)"
	exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || { echo "install-baselines: need root or sudo to install ${missing[*]}" >&2; exit 1; }
	sudo=(sudo)
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-baselines: no apt-get; install ${missing[*]} with your package manager" >&2
	exit 1
fi

echo "installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "installed: $(versions)"
