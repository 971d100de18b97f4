#!/usr/bin/env bash
# shellcheck disable=SC2016  # the backquotes in patterns are qlam's, not the shell's
# A smoke run of the Windows build under wine: what windows/README.md says works, checked;
# what is known not to work yet, checked to still fail the known way (XFAIL; an XPASS means
# it was fixed and the check should move up). Prints PASS/FAIL/XFAIL/XPASS per check, exits 1
# on any FAIL or XPASS. Run windows/build.sh first.
#
#   windows/smoke.sh            (KEEP=1 keeps the work folder and its wine prefix)
#
# Every run gets its own wine prefix: a hard-link copy of the one build.sh made (instant, a
# few MB), because wine takes %APPDATA% and %LOCALAPPDATA% from the prefix's registry, never
# from the environment; so a private prefix is the only way to a private store.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
template="$WINEPREFIX"
[ -f "$template/system.reg" ] || { echo "smoke.sh: no wine prefix at $template; run windows/build.sh" >&2; exit 2; }
[ -f "$QLAM_WIN_BIN/qlam.exe" ] || { echo "smoke.sh: no $QLAM_WIN_BIN/qlam.exe; run windows/build.sh" >&2; exit 2; }

mkdir -p "$QLAM_WIN_TARGET_DIR"
WORK="$(mktemp -d "$QLAM_WIN_TARGET_DIR/smoke.XXXXXX")"
export WINEPREFIX="$WORK/prefix"
cp -a --link "$template" "$WINEPREFIX"
# The registry files are rewritten by wineserver: give this prefix its own copies.
for f in "$template"/*.reg; do rm -f "$WINEPREFIX/$(basename "$f")"; cp "$f" "$WINEPREFIX/"; done
WINUSER="$(id -un)"
LOCALAPPDATA_UNIX="$WINEPREFIX/drive_c/users/$WINUSER/AppData/Local"

SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
  exec 7>&- 2>/dev/null
  wait 2>/dev/null
  "$QLAM_WINESERVER" -k 2>/dev/null
  if [ "${KEEP:-}" = 1 ]; then echo "kept: $WORK (WINEPREFIX=$WINEPREFIX)"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
# One wineserver for the whole run (each command would otherwise start its own: +0.5 s).
"$QLAM_WINESERVER" -p

cd "$WORK" || exit 2
# Z:\… path of a Unix path, for the places Windows programs need one.
winpath() { printf 'Z:%s' "$(readlink -f "$1" | sed 's|/|\\|g')"; }

PASSED=0 FAILED=0 XFAILED=0 XPASSED=0
OUT="$WORK/out" ERR="$WORK/err"
# q [stdin-text] -- ARGS…: runs qlam.exe; sets RC, OUT and ERR files.
q() {
  local input=
  if [ "$1" != -- ]; then input="$1"; shift; fi
  shift
  printf '%b' "$input" | timeout 120 "$QLAM_WINE" "$QLAM_WIN_BIN/qlam.exe" "$@" >"$OUT" 2>"$ERR"
  RC=$?
}
# expect NAME RC PATTERN: the last q's exit code is RC and stdout+stderr match PATTERN (ERE).
expect() {
  local name=$1 rc=$2 pattern=$3
  if [ "$RC" = "$rc" ] && grep -Eq -- "$pattern" "$OUT" "$ERR"; then
    echo "PASS: $name"; PASSED=$((PASSED + 1))
  else
    echo "FAIL: $name -- exit $RC (want $rc), want /$pattern/"; sed 's/^/    | /' "$OUT" "$ERR" | head -n 15
    FAILED=$((FAILED + 1))
  fi
}
# xfail NAME RC PATTERN: known to fail this way (see windows/README.md).
xfail() {
  local name=$1 rc=$2 pattern=$3
  if [ "$RC" = "$rc" ] && grep -Eq -- "$pattern" "$OUT" "$ERR"; then
    echo "XFAIL: $name"; XFAILED=$((XFAILED + 1))
  else
    echo "XPASS: $name -- no longer fails as known: exit $RC"; sed 's/^/    | /' "$OUT" "$ERR" | head -n 15
    XPASSED=$((XPASSED + 1))
  fi
}
check_file() {
  if [ -e "$2" ]; then echo "PASS: $1"; PASSED=$((PASSED + 1)); else echo "FAIL: $1 -- $2 missing"; FAILED=$((FAILED + 1)); fi
}

# --- configuration ----------------------------------------------------------------------
mkdir -p plugins bad
printf '{"token": "from-cmd", "expires_at": "2099-01-01T00:00:00Z"}\r\n' > answer.json
cat > config.toml <<EOF
current_context = "w"
[contexts.w]
[[contexts.w.auth_providers]]
name = "tok"
provider = "token"
[[contexts.w.auth_providers]]
name = "bas"
provider = "basic"
[[contexts.w.auth_providers]]
name = "envtok"
provider = "token"
env = "SMOKE_TOKEN"
[[contexts.w.auth_providers]]
name = "cmdtok"
provider = "token"
command = ["cmd", "/c", "type", "$(winpath answer.json | sed 's/\\/\\\\/g')"]
[contexts.w.hosts]
"git.example.com" = "envtok"
EOF
sed 's/^current_context = "w"/credential_store = "keyring"\ncurrent_context = "w"/' config.toml > keyring.toml
# Plugins that are not bundled: the vendor example and the fixtures, in one folder.
for f in acme_qlam_provider qlam_fixture_first_layout qlam_fixture_panicky qlam_fixture_old_api qlam_fixture_changed_layout qlam_fixture_marker; do
  if [ -f "$QLAM_WIN_EXTRA_BIN/$f.dll" ]; then
    ln "$QLAM_WIN_EXTRA_BIN/$f.dll" plugins/ 2>/dev/null || cp "$QLAM_WIN_EXTRA_BIN/$f.dll" plugins/
  fi
done
cat > fixtures.toml <<'EOF'
current_context = "f"
[contexts.f]
plugin_dirs = ["plugins"]
[[contexts.f.auth_providers]]
name = "first"
provider = "first-layout"
[[contexts.f.auth_providers]]
name = "pan"
provider = "panicky"
EOF
sed 's/^provider = "panicky"$/provider = "panicky"\nisolation = "process"/' fixtures.toml > isolated.toml

# --- start and discovery ----------------------------------------------------------------
q -- --version; expect "qlam.exe --version" 0 '^qlam [0-9]'
q -- --config config.toml plugins list
expect "plugins list: the bundled DLLs beside qlam.exe are loaded" 0 'loaded .*qlam_provider_basic\.dll.*basic'
expect "plugins list: oauth" 0 'loaded .*qlam_provider_oauth\.dll.*oauth'
expect "plugins list: token" 0 'loaded .*qlam_provider_token\.dll.*token'
q -- --config config.toml plugins inspect "$QLAM_WIN_BIN/qlam_provider_token.dll"
expect "plugins inspect a bundled DLL" 0 'status: +loaded'

# --- files that are not plugins -----------------------------------------------------------
echo 'just text' > bad/notes.dll
head -c 100000 "$QLAM_WIN_BIN/qlam_provider_token.dll" > bad/truncated.dll
cp "$template/drive_c/windows/system32/bcryptprimitives.dll" bad/notqlam.dll 2>/dev/null ||
  cp "$WINEPREFIX/drive_c/windows/system32/kernel32.dll" bad/notqlam.dll
q -- --config config.toml plugins inspect bad/notes.dll
expect "a text file named .dll is refused" 4 'is not a Windows DLL \(no MZ header\)'
q -- --config config.toml plugins inspect bad/truncated.dll
expect "a truncated DLL is refused" 4 'cannot be loaded as a shared library'
q -- --config config.toml plugins inspect bad/notqlam.dll
expect "a DLL that is not a qlam plugin is refused" 4 'not a qlam plugin'
q -- --config config.toml --plugin-dir bad plugins list
expect "plugins list reports every bad file and still loads the bundled ones" 0 'failed .*notes\.dll.*no MZ header'

# --- the vendor example and fixtures ------------------------------------------------------
if [ -f plugins/acme_qlam_provider.dll ]; then
  q -- --config config.toml plugins inspect plugins/acme_qlam_provider.dll
  expect "the vendor example (examples/vendor-provider) loads" 0 'provider: +acme'
fi
if [ -f plugins/qlam_fixture_old_api.dll ]; then
  q -- --config config.toml plugins inspect plugins/qlam_fixture_old_api.dll
  expect "an old plugin-api is refused by version" 4 'built against qlam-plugin-api 0\.0\.9'
  q -- --config config.toml plugins inspect plugins/qlam_fixture_changed_layout.dll
  expect "a changed layout is refused" 4 'interface layout is incompatible'
  q -- --config fixtures.toml auth headers first
  expect "a plugin built against plugin-api 0.1.0 works" 0 'X-First: v0\.1\.0'
  q -- --config fixtures.toml auth headers pan
  expect "a panicking provider is contained" 1 'provider `pan` panicked in `headers`'
  q -- --config isolated.toml auth headers pan
  xfail "isolation = \"process\" (no child side on Windows: exits 2, reported as a crash)" 1 'crashed in `build` \(its process could not start: crashed the process that loaded it \(its process exited with status 2\)\)'
  q -- --config config.toml plugins install plugins/qlam_fixture_first_layout.dll
  xfail "plugins install (loads the copy in an isolated child)" 4 'was not installed: crashed the process that loaded it'
  rm -f marker.txt
  SMOKE_MARKER="$(winpath .)\\marker.txt"
  QLAM_TEST_MARKER="$SMOKE_MARKER" q -- --config config.toml plugins inspect plugins/qlam_fixture_marker.dll
  [ -f marker.txt ] && RC=0 || RC=1
  xfail "the marker fixture's constructor runs (.init_array is ELF-only; PE needs .CRT\$XCU)" 1 ''
fi

# --- token and basic providers: login, status, token, headers, logout ---------------------
q 'tok-secret-1\n' -- --config config.toml auth login tok
expect "auth login tok (token read from piped stdin)" 0 'Logged in to `tok`'
q 'ann\r\nsecret\r\n' -- --config config.toml auth login bas
expect "auth login bas (CRLF answers from piped stdin)" 0 'Logged in to `bas` as ann'
q -- --config config.toml auth status
expect "auth status" 0 'tok +token +authenticated'
q -- --config config.toml auth token tok
expect "auth token" 0 '^tok-secret-1$'
q -- --config config.toml auth headers bas
expect "auth headers (basic)" 0 '^Authorization: Basic YW5uOnNlY3JldA==$'
q -- --config config.toml --output json auth headers tok
expect "auth headers --output json" 0 '"Authorization": "Bearer tok-secret-1"'
check_file "the file store is under %LOCALAPPDATA%\\qlam\\credentials" "$LOCALAPPDATA_UNIX/qlam/credentials/w/tok.json"
check_file "the plugin index is under %LOCALAPPDATA%\\qlam" "$LOCALAPPDATA_UNIX/qlam/plugin-index.json"
q -- --config config.toml auth logout
expect "auth logout (all)" 0 'Logged out of `bas`'
q -- --config config.toml auth token tok
expect "auth token after logout: exit 3" 3 'run `qlam auth login tok`'
SMOKE_TOKEN=from-env q -- --config config.toml auth token envtok
expect "a token from the environment" 0 '^from-env$'
q -- config path
expect "config path is under %APPDATA%" 0 'AppData\\Roaming\\qlam\\config\.toml'

# --- the answer cache (fast path) ---------------------------------------------------------
q -- --config config.toml auth token cmdtok
expect "a token from a command (cmd /c type)" 0 '^from-cmd$'
check_file "its answer is cached beside the store entry" "$LOCALAPPDATA_UNIX/qlam/credentials/w/cmdtok.answers.json"
q -- --config config.toml auth token cmdtok
expect "the cached answer is served" 0 '^from-cmd$'

# --- helpers ----------------------------------------------------------------------------
SMOKE_TOKEN=abc q 'protocol=https\r\nhost=git.example.com\r\n\r\n' -- --config config.toml credential-helper git get
expect "git credential helper (CRLF request)" 0 '^password=abc$'

# --- Credential Manager (wine's advapi32 CredWrite/CredRead) ------------------------------
q 'kr-secret\n' -- --config keyring.toml auth login tok
expect "keyring store: login" 0 'Logged in to `tok`'
q -- --config keyring.toml auth status
expect "keyring store: status says keyring" 0 'tok +token +authenticated .* keyring '
q -- --config keyring.toml auth token tok
expect "keyring store: token" 0 '^kr-secret$'
big="$(head -c 6000 /dev/zero | tr '\0' k)"
q "$big\n" -- --config keyring.toml auth login tok
q -- --config keyring.toml auth token tok
expect "keyring store: a 6000-byte value (split over several credentials)" 0 "^${big}\$"
q -- --config keyring.toml auth logout tok
q -- --config keyring.toml auth token tok
expect "keyring store: logout forgets it" 3 'not logged in'

# --- OAuth against the loopback oidc-provider (Linux side) --------------------------------
srv="$QLAM_ROOT/tests/oauth-server"
if command -v node >/dev/null && command -v openssl >/dev/null && [ -d "$srv/node_modules/oidc-provider" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 1 \
    -subj '/CN=qlam wine smoke CA' -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign >/dev/null 2>&1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj '/CN=127.0.0.1' >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile server.ext -out server.pem >/dev/null 2>&1
  mkfifo server.stdin
  node "$srv/server.mjs" --tls-cert server.pem --tls-key server.key --access-token-ttl 3600 --log server.log \
    --client-key-out jwt-ec.pem --client-rsa-key-out jwt-rsa.pem <server.stdin >server.ready 2>server.err &
  SERVER_PID=$!
  exec 7>server.stdin
  for _ in $(seq 300); do [ -s server.ready ] && break; sleep 0.05; done
  issuer="$(sed -n 's/.*"issuer":"\([^"]*\)".*/\1/p' server.ready)"
  cat > sso.toml <<EOF
current_context = "t"
[contexts.t]
[[contexts.t.auth_providers]]
name = "sso"
provider = "oauth"
issuer = "$issuer"
client_id = "qlam-cli"
scopes = ["openid", "offline_access", "api"]
ca_file = "ca.pem"
EOF
  # Device flow: qlam prints the code; the scripted user approves it from the Linux side.
  timeout 120 "$QLAM_WINE" "$QLAM_WIN_BIN/qlam.exe" --config sso.toml auth login sso --flow device >"$OUT" 2>"$ERR" </dev/null &
  login=$!
  for _ in $(seq 200); do grep -q '^Visit ' "$ERR" && break; sleep 0.1; done
  read -r uri code < <(sed -n 's/^Visit \(\S*\) and enter code \(.*\)$/\1 \2/p' "$ERR")
  node "$srv/scripted-user.mjs" --ca ca.pem device "$uri" "$code" >/dev/null 2>&1
  wait "$login"; RC=$?
  expect "OAuth device flow (rustls/ring in the DLL, loopback server on Linux)" 0 'Logged in to `sso` as alice'
  q -- --config sso.toml auth refresh sso --force
  expect "OAuth refresh" 0 'Refreshed `sso`'
  q -- --config sso.toml auth logout sso
  expect "OAuth logout revokes" 0 'Logged out of `sso`'
  # Browser flow: $BROWSER is the scripted user; wine starts Linux programs too. No drive
  # letter in it: qlam splits $BROWSER at `:` (see windows/README.md).
  BROWSER="/usr/bin/env node $srv/scripted-user.mjs --ca $WORK/ca.pem" q -- --config sso.toml auth login sso --flow browser
  expect "OAuth browser flow (PKCE, loopback redirect to qlam.exe)" 0 'Logged in to `sso` as alice'
else
  echo "SKIP: OAuth flows (need node, openssl and tests/oauth-server/node_modules: npm ci --prefix tests/oauth-server)"
fi

echo "windows smoke: $PASSED passed, $FAILED failed, $XFAILED known failures, $XPASSED fixed (XPASS)"
[ "$FAILED" = 0 ] && [ "$XPASSED" = 0 ]
