#!/usr/bin/env bash
# Installs Debian packages if their commands are missing: `.ci/apt-install.sh COMMAND PACKAGE...`.
# Tries without refreshing the package lists first (fast on a machine that has them), then with.
# Progress goes to stderr, so callers' stdout stays clean.
set -euo pipefail
cmd=${1:?COMMAND PACKAGE...}; shift
command -v "$cmd" >/dev/null && exit 0
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
{ $sudo apt-get install -y --no-install-recommends "$@" \
  || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "$@"; }; } >&2
