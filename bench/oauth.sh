#!/usr/bin/env bash
# Process timings of the OAuth provider against the real test server (tests/oauth-server,
# over TLS), side by side with their floors:
#   qlam auth token P        (a valid cached token: process start to exit)   vs  /bin/true
#   qlam auth refresh P --force (one refresh grant)                          vs  one bare curl POST of the same grant
# The refresh uses the confidential client, whose refresh token the server does not rotate,
# so every run (qlam's and curl's) sends the same grant.
# Usage: bench/oauth.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=50
[ "${1:-}" = "--quick" ] && runs=5

cargo build --release --quiet
[ -d tests/oauth-server/node_modules/oidc-provider ] || npm ci --prefix tests/oauth-server --no-audit --no-fund
if ! command -v hyperfine >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -qq hyperfine >/dev/null 2>&1 || (apt-get update -qq >/dev/null && apt-get install -y -qq hyperfine >/dev/null)) || true
fi

work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

. bench/oauth-server.sh
make_certs "$work"
start_oauth_server "$work"

export HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" XDG_DATA_HOME="$work/home/.local/share" XDG_STATE_HOME="$work/home/.local/state"
export QLAM_BENCH_SECRET=qlam-service-secret
mkdir -p "$XDG_CONFIG_HOME/qlam"
cat > "$XDG_CONFIG_HOME/qlam/config.toml" <<TOML
[contexts.bench]
[[contexts.bench.auth_providers]]
name = "sso"
provider = "oauth"
issuer = "$issuer"
client_id = "qlam-cli"
scopes = ["openid", "offline_access", "api"]
ca_file = "$work/ca.pem"
[[contexts.bench.auth_providers]]
name = "svc"
provider = "oauth"
issuer = "$issuer"
client_id = "qlam-service"
client_secret_env = "QLAM_BENCH_SECRET"
flow = "browser"
scopes = ["openid", "offline_access", "api"]
ca_file = "$work/ca.pem"
TOML
qlam=target/release/qlam
export BROWSER="node $PWD/tests/oauth-server/scripted-user.mjs --ca $work/ca.pem"
$qlam auth login sso 2>/dev/null
$qlam auth login svc 2>/dev/null
unset BROWSER
rt=$($qlam auth credential svc --show-secrets | python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])')
token_endpoint="$issuer/token"

hyperfine -N --warmup 3 --runs $runs \
  -n "/bin/true (process floor)" "/bin/true" \
  -n "qlam auth token sso (cached)" "$qlam auth token sso"
hyperfine -N --warmup 2 --runs $runs \
  -n "curl refresh grant (network floor)" "curl -s -o /dev/null --cacert $work/ca.pem -u qlam-service:qlam-service-secret -d grant_type=refresh_token -d refresh_token=$rt $token_endpoint" \
  -n "qlam auth refresh svc --force" "$qlam auth refresh svc --force"
