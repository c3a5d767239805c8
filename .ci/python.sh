#!/usr/bin/env bash
# The Python binding's tests: a virtual environment in target/ci-venv (kept between runs on one
# machine, rebuilt when python/ changes), `pip install "./python[test]"` (builds the Rust
# extension with maturin), then `pytest python/tests`. Torch is not installed (several GB), so the
# Stable-Baselines3 test is skipped here; see python/tests/test_sb3.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  py=$(python3 -c 'import sys; print(f"python3.{sys.version_info.minor}-venv")')
  # (apt-install.sh skips packages whose command exists: name one that never does.)
  .ci/apt-install.sh /nonexistent-command python3-venv "$py" || .ci/apt-install.sh /nonexistent-command python3-venv
fi
venv=target/ci-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip >&2
# maturin builds into the simulator's target folder (python/Cargo.toml has the same release
# profile), so most dependencies `cargo test --release` compiled are reused rather than rebuilt.
CARGO_TARGET_DIR="$PWD/target" "$venv/bin/pip" install -q "./python[test]" >&2
"$venv/bin/python" -m pytest -q python/tests
