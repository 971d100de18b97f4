#!/usr/bin/env bash
# The Python package `qlam` (release build), per call and at import, beside MSAL Python and
# beside floors, in one run (bench/python_bench.py does the timing; bench/README.md has the
# numbers):
#   qlam.AuthClient.get_headers(provider)  — token provider (`command` source with an expiry:
#       a valid token; `env` source: asked every call) and, when the test OAuth server can
#       run, an oauth provider with a valid cached token
#   msal PublicClientApplication.acquire_token_silent  — a valid access token in a cache
#       loaded from a file (SerializableTokenCache; msal-extensions' FilePersistence)
#   floors: a Python method returning a 1-entry dict, `d.copy()`, the empty loop
#   import time of qlam and msal, beside `python -c pass`
# Usage: bench/python.sh [--quick]     (--quick: short loops, to check that it still runs)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=()
[ "${1:-}" = "--quick" ] && quick=(--quick)

# Pinned: what the numbers in bench/README.md were measured with.
pins=(maturin==1.16.0 pydantic==2.14.4 msal==1.39.0 msal-extensions==1.3.1
      requests==2.34.2 PyJWT==2.15.1 cryptography==50.0.2)
venv="$PWD/target/bench-python-venv"
# Absolute: cargo runs a benchmark in its package's folder, and criterion puts its results
# under $CARGO_TARGET_DIR as it is given.
build="$PWD/target/bench-python"

cargo build --release --quiet # the `qlam` command and the bundled providers beside it
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet "${pins[@]}"

# A release wheel, built into its own target dir and installed as a copy. Not `maturin
# develop`: it writes the module into bindings/python/python/qlam/, the folder the test venv
# (target/python-venv) imports qlam from, so it would swap the tests' module under them.
rm -rf "$build/wheels"
CARGO_TARGET_DIR="$build" "$venv/bin/maturin" build --release --quiet \
  --manifest-path bindings/python/Cargo.toml --interpreter "$venv/bin/python" \
  --out "$build/wheels"
"$venv/bin/pip" install --quiet --force-reinstall --no-deps "$build"/wheels/qlam-*.whl

work=$(mktemp -d)
server_pid=
cleanup() { if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT

# The client loads the bundled providers from the folder of $QLAM_EXE: target/release, as
# the other benchmarks use it (whatever else the build leaves there, it skips or refuses).
export QLAM_EXE="$PWD/target/release/qlam"

# The same calls from Rust (host/lib/benches/abi.rs, two of its benchmarks), in this run, so
# the table shows what the Python layer adds. Built in the wheel's target dir (most of the
# host is compiled there already), its results kept there.
rm -rf "$build/criterion"
criterion_time=(--warm-up-time 1 --measurement-time 3)
[ ${#quick[@]} = 1 ] && criterion_time=(--warm-up-time 0.2 --measurement-time 0.5)
QLAM_BENCH_PLUGIN_DIR="$PWD/target/release" CARGO_TARGET_DIR="$build" \
  cargo bench --quiet -p qlam-host --bench abi -- \
  'client/headers_(cached_answer_1_thread|provider_called_each_time)$' "${criterion_time[@]}" \
  > "$work/criterion.log" 2>&1 || { cat "$work/criterion.log" >&2; exit 1; }
export HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" XDG_DATA_HOME="$work/home/.local/share" \
  XDG_STATE_HOME="$work/home/.local/state" XDG_CACHE_HOME="$work/home/.cache"
mkdir -p "$XDG_CONFIG_HOME/qlam"
export QLAM_TEST_API_KEY=qlam-bench-api-key

# One CA and a loopback server certificate: the test OAuth server and the MSAL stub use them.
. bench/oauth-server.sh
make_certs "$work"

# `env-key` is the demo configuration's (tests/it/demo-config.toml); `cmd` answers with an
# expiry, so its answer is reused, and appends a line to a file each time it runs, so the
# benchmark can check that it did not run during the timed loop.
: > "$work/command-runs"
cat > "$XDG_CONFIG_HOME/qlam/config.toml" <<TOML
current_context = "bench"
[contexts.bench]
[[contexts.bench.auth_providers]]
name = "env-key"
provider = "token"
env = "QLAM_TEST_API_KEY"
header = "X-API-Key"
scheme = ""
[[contexts.bench.auth_providers]]
name = "cmd"
provider = "token"
command = ["sh", "-c", "echo run >> '$work/command-runs'; echo '{\"token\": \"from-command\", \"expires_at\": \"2099-01-01T00:00:00Z\"}'"]
TOML

# The oauth provider: logged in against the real test server (as bench/oauth.sh does), which
# is then stopped, so a get_headers that went to the network would fail.
oauth=()
if command -v node >/dev/null && { [ -d tests/oauth-server/node_modules/oidc-provider ] ||
     npm ci --prefix tests/oauth-server --no-audit --no-fund >/dev/null 2>&1; }; then
  start_oauth_server "$work"
  cat >> "$XDG_CONFIG_HOME/qlam/config.toml" <<TOML
[[contexts.bench.auth_providers]]
name = "sso"
provider = "oauth"
issuer = "$issuer"
client_id = "qlam-cli"
scopes = ["openid", "offline_access", "api"]
ca_file = "$work/ca.pem"
TOML
  BROWSER="node $PWD/tests/oauth-server/scripted-user.mjs --ca $work/ca.pem" "$QLAM_EXE" auth login sso 2>/dev/null
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  oauth=(--oauth sso)
else
  echo "node or the test OAuth server's packages are missing: no oauth provider row" >&2
fi

echo "qlam at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench' || echo ', with uncommitted changes')"
# Run from the scratch folder, so `import qlam` cannot pick up bindings/python by accident.
root=$PWD
(cd "$work" && "$venv/bin/python" "$root/bench/python_bench.py" "${quick[@]}" "${oauth[@]}" \
  --ca "$work/ca.pem" --cert "$work/server.pem" --key "$work/server.key" --work "$work" \
  --command-count "$work/command-runs" --rust-criterion "$build/criterion")
