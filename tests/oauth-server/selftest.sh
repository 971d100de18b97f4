#!/usr/bin/env bash
# End-to-end self test of server.mjs and scripted-user.mjs over TLS.
# Needs: node (>= 20.18), npm (only when node_modules is missing), openssl, curl.
# Prints PASS/FAIL per check and exits non-zero on any failure.
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE" || exit 2

if [ ! -d node_modules/oidc-provider ]; then
  echo "selftest: node_modules missing, running npm ci" >&2
  npm ci --no-audit --no-fund >&2 || { echo "FAIL: npm ci"; exit 1; }
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/qlam-oauth-selftest.XXXXXX")
SERVER_PID=
SERVER2_PID=
LISTENER_PIDS=()
BG_PIDS=()

cleanup() {
  local pid
  for pid in "${LISTENER_PIDS[@]}" "${BG_PIDS[@]}" $SERVER2_PID $SERVER_PID; do
    kill "$pid" 2>/dev/null
  done
  exec 7>&- 2>/dev/null
  wait 2>/dev/null
  if [ "${KEEP_WORK:-}" = 1 ]; then
    echo "selftest: work directory kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

PASSED=0
FAILED=0
pass() { echo "PASS: $1"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $1${2:+ -- $2}"; FAILED=$((FAILED + 1)); }
# check NAME COMMAND...: PASS when COMMAND succeeds.
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
# checkc NAME 'CONDITION': PASS when the shell CONDITION (evaluated) is true.
checkc() { local name=$1; shift; if eval "$1"; then pass "$name"; else fail "$name"; fi; }
now_ms() { date +%s%3N; }

# --- small JSON helper (node, so that jq is not needed) ----------------------
cat >"$WORK/jget.mjs" <<'EOF'
// usage: node jget.mjs PATH < json   (PATH like .a.b or .a[0]; prints strings raw)
let input = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) input += chunk;
let value;
try { value = JSON.parse(input); } catch { process.exit(3); }
for (const part of process.argv[2].split(/[.[\]]/).filter(Boolean)) {
  if (value === null || typeof value !== 'object' || !(part in value)) process.exit(1);
  value = value[part];
}
process.stdout.write(typeof value === 'string' ? value : JSON.stringify(value));
EOF
jget() { node "$WORK/jget.mjs" "$2" <<<"$1"; }

# --- client assertion (RFC 7523) signer for the private_key_jwt clients -------
cat >"$WORK/assertion.mjs" <<'EOF'
// usage: node assertion.mjs KEY_PEM CLIENT_ID KID ALG AUD  (prints a signed client assertion)
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
const [keyFile, clientId, kid, alg, aud] = process.argv.slice(2);
const key = crypto.createPrivateKey(fs.readFileSync(keyFile));
const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const now = Math.floor(Date.now() / 1000);
const input = `${part({ alg, kid, typ: 'JWT' })}.${part({
  iss: clientId, sub: clientId, aud, jti: crypto.randomUUID(), iat: now, exp: now + 60,
})}`;
const signature = crypto.sign('sha256', Buffer.from(input),
  alg.startsWith('ES') ? { key, dsaEncoding: 'ieee-p1363' } : key);
process.stdout.write(`${input}.${signature.toString('base64url')}`);
EOF
assertion() { node "$WORK/assertion.mjs" "$@"; }
JWT_BEARER=urn:ietf:params:oauth:client-assertion-type:jwt-bearer

# --- callback listener: random port, records the first request line ----------
cat >"$WORK/listener.mjs" <<'EOF'
import * as fs from 'node:fs';
import * as http from 'node:http';
const [portFile, urlFile] = process.argv.slice(2);
const server = http.createServer((req, res) => {
  fs.writeFileSync(urlFile, `${req.url}\n`);
  res.setHeader('content-type', 'text/plain');
  res.end('qlam selftest listener: you can close this window\n');
  server.close();
});
server.listen(0, '127.0.0.1', () => fs.writeFileSync(portFile, String(server.address().port)));
setTimeout(() => process.exit(1), 60000).unref();
EOF
# start_listener NAME -> sets LPORT, LURL_FILE
start_listener() {
  local name=$1 i
  rm -f "$WORK/$name.port" "$WORK/$name.url"
  node "$WORK/listener.mjs" "$WORK/$name.port" "$WORK/$name.url" &
  LISTENER_PIDS+=($!)
  for i in $(seq 1 100); do
    [ -s "$WORK/$name.port" ] && break
    sleep 0.05
  done
  LPORT=$(cat "$WORK/$name.port")
  LURL_FILE="$WORK/$name.url"
}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
new_verifier() { openssl rand 48 | b64url; }
challenge_for() { printf '%s' "$1" | openssl dgst -sha256 -binary | b64url; }
query_param() { # query_param URL NAME
  node -e 'const u = new URL(process.argv[1], "http://x"); const v = u.searchParams.get(process.argv[2]); if (v === null) process.exit(1); process.stdout.write(v);' "$1" "$2"
}
urlenc() { node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$1"; }

# --- 1. throw-away CA and server certificate for 127.0.0.1 -------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=qlam selftest CA" \
  -keyout "$WORK/ca.key" -out "$WORK/ca.pem" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  >/dev/null 2>"$WORK/openssl.err"
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$WORK/server.key" -out "$WORK/server.csr" >/dev/null 2>>"$WORK/openssl.err"
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$WORK/server.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 1 -extfile "$WORK/server.ext" -out "$WORK/server.pem" >/dev/null 2>>"$WORK/openssl.err"
if [ -s "$WORK/server.pem" ]; then
  pass "throw-away CA and server certificate (SAN IP:127.0.0.1)"
else
  fail "throw-away CA and server certificate" "$(cat "$WORK/openssl.err")"
  exit 1
fi
CA=$WORK/ca.pem
CURL=(curl -sS --cacert "$CA" --max-time 20)

# --- 2. start the server ----------------------------------------------------------
ATTL=45
LOG=$WORK/events.log
mkfifo "$WORK/stdin"
T0=$(now_ms)
node server.mjs --tls-cert "$WORK/server.pem" --tls-key "$WORK/server.key" \
  --access-token-ttl "$ATTL" --log "$LOG" \
  --client-key-out "$WORK/jwt-ec.pem" --client-rsa-key-out "$WORK/jwt-rsa.pem" \
  <"$WORK/stdin" >"$WORK/ready" 2>"$WORK/server.err" &
SERVER_PID=$!
exec 7>"$WORK/stdin" # the server's stdin stays open while fd 7 is open
for i in $(seq 1 300); do
  [ -s "$WORK/ready" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.05
done
T1=$(now_ms)
READY=$(head -n 1 "$WORK/ready")
ISSUER=$(jget "$READY" .issuer)
PORT=$(jget "$READY" .port)
if [[ "$ISSUER" =~ ^https://127\.0\.0\.1:[0-9]+$ ]] && [ "$ISSUER" = "https://127.0.0.1:$PORT" ]; then
  pass "server ready line $READY after $((T1 - T0)) ms"
else
  fail "server ready line" "got '$READY'; stderr: $(cat "$WORK/server.err")"
  exit 1
fi

# --- 3. discovery -----------------------------------------------------------------
DISCO=$("${CURL[@]}" "$ISSUER/.well-known/openid-configuration")
check "discovery: issuer matches" [ "$(jget "$DISCO" .issuer)" = "$ISSUER" ]
for ep in authorization_endpoint token_endpoint device_authorization_endpoint revocation_endpoint userinfo_endpoint; do
  v=$(jget "$DISCO" ".$ep")
  checkc "discovery: $ep = $v" '[ -n "$v" ] && [[ "$v" == "$ISSUER"/* ]]'
done
check "discovery: authorization_response_iss_parameter_supported" [ "$(jget "$DISCO" .authorization_response_iss_parameter_supported)" = true ]
check "discovery: code_challenge_methods_supported is [\"S256\"]" [ "$(jget "$DISCO" .code_challenge_methods_supported)" = '["S256"]' ]
check "discovery: scopes_supported has openid offline_access profile email api" \
  [ "$(jget "$DISCO" .scopes_supported)" = '["openid","offline_access","profile","email","api"]' ]
AUTHZ=$(jget "$DISCO" .authorization_endpoint)
TOKEN=$(jget "$DISCO" .token_endpoint)
DEVAUTH=$(jget "$DISCO" .device_authorization_endpoint)
REVOKE=$(jget "$DISCO" .revocation_endpoint)
USERINFO=$(jget "$DISCO" .userinfo_endpoint)
if curl -sS --max-time 10 -o /dev/null "$ISSUER/.well-known/openid-configuration" 2>/dev/null; then
  fail "TLS: curl without --cacert must reject the test certificate"
else
  pass "TLS: curl without --cacert rejects the test certificate"
fi

# --- 4. client_credentials ----------------------------------------------------------
CC=$("${CURL[@]}" -u qlam-service:qlam-service-secret -d grant_type=client_credentials -d scope=api "$TOKEN")
checkc "client_credentials (client_secret_basic): access token, expires_in=$ATTL, scope=api" \
  '[ -n "$(jget "$CC" .access_token)" ] && [ "$(jget "$CC" .expires_in)" = "$ATTL" ] && [ "$(jget "$CC" .scope)" = api ]'
CC2=$("${CURL[@]}" -d grant_type=client_credentials -d client_id=qlam-service -d client_secret=qlam-service-secret "$TOKEN")
check "client_credentials (client_secret_post): access token" [ -n "$(jget "$CC2" .access_token)" ]
CC3=$("${CURL[@]}" -u qlam-service:wrong -d grant_type=client_credentials "$TOKEN")
check "client_credentials with a wrong secret: invalid_client" [ "$(jget "$CC3" .error)" = invalid_client ]
CC4=$("${CURL[@]}" -d grant_type=client_credentials -d client_id=qlam-cli "$TOKEN")
check "client_credentials for the public client: refused ($(jget "$CC4" .error))" [ -n "$(jget "$CC4" .error)" ]

# --- 4b. private_key_jwt clients (RFC 7523 client assertions) -------------------------
for f in jwt-ec jwt-rsa; do
  checkc "--client-key-out/--client-rsa-key-out: $f.pem is a PKCS#8 PEM private key with mode 600" \
    '[ "$(head -n 1 "$WORK/$f.pem")" = "-----BEGIN PRIVATE KEY-----" ] && [ "$(stat -c %a "$WORK/$f.pem")" = 600 ]'
done
checkc "discovery: token_endpoint_auth_methods_supported has private_key_jwt" \
  '[[ "$(jget "$DISCO" .token_endpoint_auth_methods_supported)" == *\"private_key_jwt\"* ]]'
# jwt_post CLIENT_ID ASSERTION -> client_credentials response from the token endpoint
jwt_post() {
  "${CURL[@]}" -d grant_type=client_credentials -d "client_id=$1" -d "client_assertion_type=$JWT_BEARER" \
    -d "client_assertion=$2" "$TOKEN"
}
# jwt_cc KEY CLIENT_ID KID ALG AUD -> response for a fresh assertion
jwt_cc() { jwt_post "$2" "$(assertion "$@")"; }
ASSERTION=$(assertion "$WORK/jwt-ec.pem" qlam-jwt qlam-jwt-key ES256 "$TOKEN")
J=$(jwt_post qlam-jwt "$ASSERTION")
check "qlam-jwt (ES256, aud = token endpoint): access token" [ -n "$(jget "$J" .access_token)" ]
J=$(jwt_post qlam-jwt "$ASSERTION")
check "qlam-jwt: the same assertion (jti) again: invalid_client" [ "$(jget "$J" .error)" = invalid_client ]
J=$(jwt_cc "$WORK/jwt-ec.pem" qlam-jwt qlam-jwt-key ES256 "$ISSUER")
check "qlam-jwt (aud = issuer): access token" [ -n "$(jget "$J" .access_token)" ]
J=$(jwt_cc "$WORK/jwt-ec.pem" qlam-jwt qlam-jwt-key ES256 "$ISSUER/")
check "qlam-jwt (aud = issuer with a trailing slash): invalid_client" [ "$(jget "$J" .error)" = invalid_client ]
node -e 'process.stdout.write(require("crypto").generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }))' >"$WORK/jwt-wrong.pem"
J=$(jwt_cc "$WORK/jwt-wrong.pem" qlam-jwt qlam-jwt-key ES256 "$TOKEN")
check "qlam-jwt signed with a wrong key: invalid_client" [ "$(jget "$J" .error)" = invalid_client ]
J=$(jwt_cc "$WORK/jwt-rsa.pem" qlam-jwt qlam-jwt-key RS256 "$TOKEN")
check "qlam-jwt with RS256 instead of its registered ES256: invalid_client" [ "$(jget "$J" .error)" = invalid_client ]
J=$(jwt_cc "$WORK/jwt-rsa.pem" qlam-jwt-rsa qlam-jwt-rsa-key RS256 "$TOKEN")
check "qlam-jwt-rsa (RS256): access token" [ -n "$(jget "$J" .access_token)" ]

# --- 5. authorization code + PKCE S256, random loopback port --------------------------
# auth_code_flow NAME SCOPE [scripted-user options...] -> sets CB_URL, SU_RC, REDIRECT_URI, VERIFIER, STATE
auth_code_flow() {
  local name=$1 scope=$2
  shift 2
  start_listener "$name"
  REDIRECT_URI="http://127.0.0.1:$LPORT/callback"
  VERIFIER=$(new_verifier)
  STATE=$(openssl rand -hex 8)
  local url="$AUTHZ?client_id=${FLOW_CLIENT:-qlam-cli}&response_type=code&scope=$(urlenc "$scope")&redirect_uri=$(urlenc "$REDIRECT_URI")&state=$STATE&code_challenge=$(challenge_for "$VERIFIER")&code_challenge_method=S256"
  FLOW_URL=$url
  if [ "${FLOW_CA_ENV:-}" = 1 ]; then
    NODE_EXTRA_CA_CERTS=$CA node scripted-user.mjs "$@" "$url" 2>"$WORK/$name.user.err"
  else
    node scripted-user.mjs --ca "$CA" "$@" "$url" 2>"$WORK/$name.user.err"
  fi
  SU_RC=$?
  CB_URL=$(cat "$LURL_FILE" 2>/dev/null)
}

auth_code_flow flow1 "openid offline_access profile email api" --user alice
check "auth code: scripted-user exit 0 (redirect_uri $REDIRECT_URI)" [ "$SU_RC" = 0 ]
CODE=$(query_param "$CB_URL" code)
check "auth code: callback on the random port received a code" [ -n "$CODE" ]
check "auth code: state round-trips" [ "$(query_param "$CB_URL" state)" = "$STATE" ]
check "auth code: iss parameter (RFC 9207) equals the issuer" [ "$(query_param "$CB_URL" iss)" = "$ISSUER" ]
BADPKCE=$("${CURL[@]}" -d grant_type=authorization_code -d client_id=qlam-cli -d "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" -d "code_verifier=$(new_verifier)" "$TOKEN")
check "auth code: exchange with a wrong code_verifier is invalid_grant" [ "$(jget "$BADPKCE" .error)" = invalid_grant ]
# Use a fresh flow for the real exchange, independent of what a failed attempt
# does to the first code.
auth_code_flow flow1b "openid offline_access profile email api" --user alice
CODE=$(query_param "$CB_URL" code)
TOK=$("${CURL[@]}" -d grant_type=authorization_code -d client_id=qlam-cli -d "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" -d "code_verifier=$VERIFIER" "$TOKEN")
AT1=$(jget "$TOK" .access_token)
RT1=$(jget "$TOK" .refresh_token)
checkc "auth code: token exchange with the verifier gives access, refresh and id tokens" \
  '[ -n "$AT1" ] && [ -n "$RT1" ] && [ -n "$(jget "$TOK" .id_token)" ]'
checkc "auth code: expires_in=$ATTL and scope '$(jget "$TOK" .scope)'" \
  '[ "$(jget "$TOK" .expires_in)" = "$ATTL" ] && [[ " $(jget "$TOK" .scope) " == *" offline_access "* ]] && [[ " $(jget "$TOK" .scope) " == *" api "* ]]'
CODE_AGAIN=$("${CURL[@]}" -d grant_type=authorization_code -d client_id=qlam-cli -d "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" -d "code_verifier=$VERIFIER" "$TOKEN")
check "auth code: a code cannot be redeemed twice (invalid_grant)" [ "$(jget "$CODE_AGAIN" .error)" = invalid_grant ]
# note: redeeming a code twice revokes what the code had issued (RFC 6749 §4.1.2),
# so the rest uses another flow.
auth_code_flow flow2 "openid offline_access profile email api" --user alice
CODE=$(query_param "$CB_URL" code)
TOK=$("${CURL[@]}" -d grant_type=authorization_code -d client_id=qlam-cli -d "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" -d "code_verifier=$VERIFIER" "$TOKEN")
AT1=$(jget "$TOK" .access_token)
RT1=$(jget "$TOK" .refresh_token)
checkc "auth code (second flow, port $LPORT): tokens issued" '[ -n "$AT1" ] && [ -n "$RT1" ]'
UI=$("${CURL[@]}" -H "Authorization: Bearer $AT1" "$USERINFO")
checkc "userinfo with the opaque access token: sub=alice, email=$(jget "$UI" .email)" \
  '[ "$(jget "$UI" .sub)" = alice ] && [ "$(jget "$UI" .email)" = alice@example.test ]'

# --- 6. refresh token rotation and reuse detection -------------------------------------
refresh() { "${CURL[@]}" -d grant_type=refresh_token -d client_id=qlam-cli --data-urlencode "refresh_token=$1" "$TOKEN"; }
R=$(refresh "$RT1")
AT2=$(jget "$R" .access_token)
RT2=$(jget "$R" .refresh_token)
checkc "refresh #1: new access token and a NEW refresh token (rotation)" \
  '[ -n "$AT2" ] && [ -n "$RT2" ] && [ "$RT2" != "$RT1" ] && [ "$AT2" != "$AT1" ]'
R=$(refresh "$RT2")
AT3=$(jget "$R" .access_token)
RT3=$(jget "$R" .refresh_token)
checkc "refresh #2: rotated again" '[ -n "$RT3" ] && [ "$RT3" != "$RT2" ] && [ "$RT3" != "$RT1" ]'
UI=$("${CURL[@]}" -H "Authorization: Bearer $AT3" "$USERINFO")
check "userinfo with the refreshed access token" [ "$(jget "$UI" .sub)" = alice ]
R=$(refresh "$RT1")
check "reuse of an already-rotated refresh token: invalid_grant" [ "$(jget "$R" .error)" = invalid_grant ]
R=$(refresh "$RT3")
check "after the reuse, the newest refresh token is revoked too: invalid_grant" [ "$(jget "$R" .error)" = invalid_grant ]
UI_STATUS=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $AT3" "$USERINFO")
check "after the reuse, the grant's access token is revoked too (userinfo HTTP $UI_STATUS)" [ "$UI_STATUS" = 401 ]

# --- 7. revocation ----------------------------------------------------------------------
auth_code_flow flow3 "openid offline_access api" --user bob
CODE=$(query_param "$CB_URL" code)
TOK=$("${CURL[@]}" -d grant_type=authorization_code -d client_id=qlam-cli -d "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" -d "code_verifier=$VERIFIER" "$TOKEN")
RTR=$(jget "$TOK" .refresh_token)
ATR=$(jget "$TOK" .access_token)
REV_STATUS=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -d client_id=qlam-cli -d token_type_hint=refresh_token \
  --data-urlencode "token=$RTR" "$REVOKE")
check "revocation of a refresh token: HTTP $REV_STATUS" [ "$REV_STATUS" = 200 ]
R=$(refresh "$RTR")
check "refresh with the revoked refresh token: invalid_grant" [ "$(jget "$R" .error)" = invalid_grant ]
UI_STATUS=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ATR" "$USERINFO")
check "revoking the refresh token revoked the grant's access token (userinfo HTTP $UI_STATUS)" [ "$UI_STATUS" = 401 ]
REV_STATUS=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -d client_id=qlam-cli --data-urlencode "token=not-a-token" "$REVOKE")
check "revocation of an unknown token: HTTP 200 (RFC 7009)" [ "$REV_STATUS" = 200 ]

# --- 8. denied consent, CA from NODE_EXTRA_CA_CERTS ---------------------------------------
FLOW_CA_ENV=1 auth_code_flow flow4 "openid offline_access" --deny
check "deny: scripted-user --deny exit 0 (CA from NODE_EXTRA_CA_CERTS)" [ "$SU_RC" = 0 ]
checkc "deny: callback got error=access_denied with iss" \
  '[ "$(query_param "$CB_URL" error)" = access_denied ] && [ "$(query_param "$CB_URL" iss)" = "$ISSUER" ]'

node scripted-user.mjs "$FLOW_URL" 2>"$WORK/noca.user.err"
NOCA_RC=$?
checkc "scripted-user without --ca or NODE_EXTRA_CA_CERTS fails (exit $NOCA_RC: $(tail -n 1 "$WORK/noca.user.err" | cut -c1-90))" \
  '[ "$NOCA_RC" != 0 ] && grep -q FAILED "$WORK/noca.user.err"'

# A fake "issuer" that redirects straight to a non-loopback host: must not be followed.
cat >"$WORK/evil.mjs" <<'EOF2'
import * as fs from 'node:fs';
import * as http from 'node:http';
const [portFile, target] = process.argv.slice(2);
const server = http.createServer((req, res) => {
  res.writeHead(302, { location: target });
  res.end();
});
server.listen(0, '127.0.0.1', () => fs.writeFileSync(portFile, String(server.address().port)));
setTimeout(() => process.exit(0), 30000).unref();
EOF2
for target in "http://evil.example/callback?code=x&state=y" "http://localhost:9/callback?code=x"; do
  rm -f "$WORK/evil.port"
  node "$WORK/evil.mjs" "$WORK/evil.port" "$target" &
  EVIL_PID=$!
  BG_PIDS+=($EVIL_PID)
  for i in $(seq 1 100); do [ -s "$WORK/evil.port" ] && break; sleep 0.05; done
  node scripted-user.mjs "http://127.0.0.1:$(cat "$WORK/evil.port")/auth?x=1" 2>"$WORK/evil.user.err"
  EVIL_RC=$?
  checkc "scripted-user refuses to follow a redirect to ${target%%\?*} (exit $EVIL_RC)" \
    '[ "$EVIL_RC" != 0 ] && grep -q "refusing to follow" "$WORK/evil.user.err"'
  kill "$EVIL_PID" 2>/dev/null
done

# --- 8b. confidential client: auth code + PKCE, client_secret_basic, no rotation ------------
FLOW_CLIENT=qlam-service auth_code_flow flow5 "openid offline_access api" --user dave
CODE=$(query_param "$CB_URL" code)
TOK=$("${CURL[@]}" -u qlam-service:qlam-service-secret -d grant_type=authorization_code -d "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" -d "code_verifier=$VERIFIER" "$TOKEN")
SRT=$(jget "$TOK" .refresh_token)
checkc "qlam-service: auth code on random port $LPORT + PKCE + client_secret_basic gives a refresh token" \
  '[ "$SU_RC" = 0 ] && [ -n "$(jget "$TOK" .access_token)" ] && [ -n "$SRT" ]'
R=$("${CURL[@]}" -u qlam-service:qlam-service-secret -d grant_type=refresh_token --data-urlencode "refresh_token=$SRT" "$TOKEN")
checkc "qlam-service: refresh works and does NOT rotate (same refresh token returned)" \
  '[ -n "$(jget "$R" .access_token)" ] && [ "$(jget "$R" .refresh_token)" = "$SRT" ]'
R=$("${CURL[@]}" -d grant_type=refresh_token -d client_id=qlam-cli --data-urlencode "refresh_token=$SRT" "$TOKEN")
check "qlam-service's refresh token cannot be used by qlam-cli ($(jget "$R" .error))" [ "$(jget "$R" .error)" = invalid_grant ]

# --- 9. PKCE is required, S256 only, exact redirect path ------------------------------------
start_listener nopkce
NP_REDIRECT="http://127.0.0.1:$LPORT/callback"
LOC=$("${CURL[@]}" -o /dev/null -w '%{redirect_url}' \
  "$AUTHZ?client_id=qlam-cli&response_type=code&scope=openid&redirect_uri=$(urlenc "$NP_REDIRECT")&state=s1")
checkc "no PKCE (public client): refused with error=$(query_param "$LOC" error) ($(query_param "$LOC" error_description))" \
  '[ "$(query_param "$LOC" error)" = invalid_request ] && [[ "$LOC" == "$NP_REDIRECT"* ]]'
LOC=$("${CURL[@]}" -o /dev/null -w '%{redirect_url}' \
  "$AUTHZ?client_id=qlam-service&response_type=code&scope=openid&redirect_uri=$(urlenc "$NP_REDIRECT")&state=s2")
check "no PKCE (confidential client): refused with error=$(query_param "$LOC" error)" [ "$(query_param "$LOC" error)" = invalid_request ]
LOC=$("${CURL[@]}" -o /dev/null -w '%{redirect_url}' \
  "$AUTHZ?client_id=qlam-cli&response_type=code&scope=openid&redirect_uri=$(urlenc "$NP_REDIRECT")&state=s3&code_challenge=$(challenge_for abc)&code_challenge_method=plain")
check "code_challenge_method=plain: refused with error=$(query_param "$LOC" error)" [ "$(query_param "$LOC" error)" = invalid_request ]
ST=$("${CURL[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' \
  "$AUTHZ?client_id=qlam-cli&response_type=code&scope=openid&redirect_uri=$(urlenc "http://127.0.0.1:$LPORT/other")&state=s4&code_challenge=$(challenge_for abc)&code_challenge_method=S256")
check "unregistered redirect path: HTTP 400 error page, no redirect ('$ST')" [ "$ST" = "400 " ]
ST=$("${CURL[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' \
  "$AUTHZ?client_id=qlam-cli&response_type=code&scope=openid&redirect_uri=$(urlenc "http://localhost:$LPORT/callback")&state=s5&code_challenge=$(challenge_for abc)&code_challenge_method=S256")
check "localhost instead of 127.0.0.1 in redirect_uri: HTTP 400, no redirect ('$ST')" [ "$ST" = "400 " ]
kill "${LISTENER_PIDS[-1]}" 2>/dev/null

# --- 10. device flow ---------------------------------------------------------------------------
DA=$("${CURL[@]}" -d client_id=qlam-cli --data-urlencode "scope=openid offline_access api" "$DEVAUTH")
DEVICE_CODE=$(jget "$DA" .device_code)
USER_CODE=$(jget "$DA" .user_code)
VURI=$(jget "$DA" .verification_uri)
INTERVAL=$(jget "$DA" .interval)
checkc "device authorization: user_code=$USER_CODE verification_uri=$VURI interval=$INTERVAL expires_in=$(jget "$DA" .expires_in)" \
  '[ -n "$DEVICE_CODE" ] && [ -n "$USER_CODE" ] && [[ "$VURI" == "$ISSUER"/* ]] && [ -n "$INTERVAL" ]'
device_poll() { "${CURL[@]}" -d client_id=qlam-cli -d grant_type=urn:ietf:params:oauth:grant-type:device_code --data-urlencode "device_code=$1" "$TOKEN"; }
P=$(device_poll "$DEVICE_CODE")
check "device poll before approval: authorization_pending" [ "$(jget "$P" .error)" = authorization_pending ]
P=$(device_poll "$DEVICE_CODE")
check "device poll faster than the interval: slow_down" [ "$(jget "$P" .error)" = slow_down ]
node scripted-user.mjs --ca "$CA" --user carol device "$VURI" "$USER_CODE" 2>"$WORK/device.user.err" &
DEV_USER_PID=$!
BG_PIDS+=($DEV_USER_PID)
POLLS=0
DT=
while [ $POLLS -lt 30 ]; do
  sleep "$INTERVAL"
  POLLS=$((POLLS + 1))
  P=$(device_poll "$DEVICE_CODE")
  E=$(jget "$P" .error)
  if [ "$E" = slow_down ]; then INTERVAL=$((INTERVAL + 5)); continue; fi
  [ "$E" = authorization_pending ] && continue
  DT=$P
  break
done
wait "$DEV_USER_PID"
DEV_RC=$?
check "device: scripted-user device ... exit 0" [ "$DEV_RC" = 0 ]
DRT=$(jget "$DT" .refresh_token)
checkc "device: token after $POLLS poll(s) at the announced interval: access + refresh token" \
  '[ -n "$(jget "$DT" .access_token)" ] && [ -n "$DRT" ]'
UI=$("${CURL[@]}" -H "Authorization: Bearer $(jget "$DT" .access_token)" "$USERINFO")
check "device: userinfo sub=carol" [ "$(jget "$UI" .sub)" = carol ]
R=$(refresh "$DRT")
checkc "device: refresh token works and rotates" '[ -n "$(jget "$R" .refresh_token)" ] && [ "$(jget "$R" .refresh_token)" != "$DRT" ]'
REV_STATUS=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -d client_id=qlam-cli -d token_type_hint=access_token \
  --data-urlencode "token=$(jget "$R" .access_token)" "$REVOKE")
R2=$(refresh "$(jget "$R" .refresh_token)")
checkc "revoking an ACCESS token (HTTP $REV_STATUS) also kills the grant's refresh token ($(jget "$R2" .error))" \
  '[ "$REV_STATUS" = 200 ] && [ "$(jget "$R2" .error)" = invalid_grant ]'
P=$(device_poll "$DEVICE_CODE")
check "device: the device code cannot be redeemed twice ($(jget "$P" .error))" [ "$(jget "$P" .error)" = invalid_grant ]

DA=$("${CURL[@]}" -d client_id=qlam-cli --data-urlencode "scope=openid" "$DEVAUTH")
DEVICE_CODE=$(jget "$DA" .device_code)
node scripted-user.mjs --ca "$CA" --deny device "$(jget "$DA" .verification_uri_complete)" 2>"$WORK/device-deny.user.err"
check "device deny: scripted-user --deny device (verification_uri_complete) exit 0" [ $? = 0 ]
sleep "$(jget "$DA" .interval)"
P=$(device_poll "$DEVICE_CODE")
check "device deny: poll gives access_denied" [ "$(jget "$P" .error)" = access_denied ]

# --- 11. event log --------------------------------------------------------------------------------
n_cc=$(grep '"event":"grant.success"' "$LOG" | grep -c '"grant_type":"client_credentials"')
n_ac=$(grep '"event":"grant.success"' "$LOG" | grep -c '"grant_type":"authorization_code"')
n_rt=$(grep '"event":"grant.success"' "$LOG" | grep -c '"grant_type":"refresh_token"')
n_dc=$(grep '"event":"grant.success"' "$LOG" | grep -c '"grant_type":"urn:ietf:params:oauth:grant-type:device_code"')
check "log: grant.success client_credentials = 5 (got $n_cc)" [ "$n_cc" = 5 ]
check "log: grant.success authorization_code = 4 (got $n_ac)" [ "$n_ac" = 4 ]
check "log: grant.success refresh_token = 4 (got $n_rt)" [ "$n_rt" = 4 ]
check "log: grant.success device_code = 1 (got $n_dc)" [ "$n_dc" = 1 ]
check "log: every grant.success has client_id" [ "$(grep '"event":"grant.success"' "$LOG" | grep -vc '"client_id":"qlam-')" = 0 ]
check "log: refresh_token.reuse recorded" grep -q '"event":"refresh_token.reuse"' "$LOG"
check "log: grant.error invalid_grant for refresh_token recorded" \
  grep -q '"event":"grant.error","grant_type":"refresh_token","client_id":"qlam-cli","error":"invalid_grant"' "$LOG"
check "log: grant.revoked recorded" grep -q '"event":"grant.revoked"' "$LOG"
check "log: revocation.success of a RefreshToken recorded" grep -q '"event":"revocation.success".*"token_kind":"RefreshToken"' "$LOG"
check "log: grant.error slow_down recorded" grep -q '"error":"slow_down"' "$LOG"
check "log: qlam-jwt grant.success with client_auth_method private_key_jwt" \
  grep -q '"event":"grant.success","grant_type":"client_credentials","client_id":"qlam-jwt",.*"client_auth_method":"private_key_jwt","client_assertion_alg":"ES256","client_assertion_kid":"qlam-jwt-key"' "$LOG"
check "log: qlam-jwt wrong key logged as grant.error invalid_client" \
  grep -q '"event":"grant.error","grant_type":"client_credentials","client_id":"qlam-jwt","error":"invalid_client",.*"client_auth_method":"private_key_jwt"' "$LOG"
check "log: qlam-service client_secret_basic logged as such" \
  grep -q '"client_id":"qlam-service",.*"client_auth_method":"client_secret_basic"' "$LOG"
check "log: every line is JSON" node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n");
  for (const l of lines) JSON.parse(l);' "$LOG"

# --- 12. shutdown -------------------------------------------------------------------------------
check "server wrote exactly one line on stdout" [ "$(wc -l <"$WORK/ready" | tr -d ' ')" = 1 ]
exec 7>&-
for i in $(seq 1 60); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$SERVER_PID" 2>/dev/null; then
  fail "server exits when its stdin is closed"
else
  wait "$SERVER_PID"
  check "server exits (status 0) when its stdin is closed" [ $? = 0 ]
fi
SERVER_PID=

# plain http mode, default TTL, SIGTERM
mkfifo "$WORK/stdin2"
node server.mjs <"$WORK/stdin2" >"$WORK/ready2" 2>"$WORK/server2.err" &
SERVER2_PID=$!
exec 8>"$WORK/stdin2"
for i in $(seq 1 300); do [ -s "$WORK/ready2" ] && break; sleep 0.05; done
ISSUER2=$(jget "$(head -n 1 "$WORK/ready2")" .issuer)
checkc "http mode: ready line issuer $ISSUER2" '[[ "$ISSUER2" =~ ^http://127\.0\.0\.1:[0-9]+$ ]]'
CC=$(curl -sS --max-time 10 -u qlam-service:qlam-service-secret -d grant_type=client_credentials "$ISSUER2/token")
check "http mode: default access token TTL is 60 s" [ "$(jget "$CC" .expires_in)" = 60 ]
J=$(curl -sS --max-time 10 -d grant_type=client_credentials -d client_id=qlam-jwt -d "client_assertion_type=$JWT_BEARER" \
  -d "client_assertion=$(assertion "$WORK/jwt-ec.pem" qlam-jwt qlam-jwt-key ES256 "$ISSUER2/token")" "$ISSUER2/token")
check "http mode without --client-key-out: no qlam-jwt client (invalid_client)" [ "$(jget "$J" .error)" = invalid_client ]
kill -TERM "$SERVER2_PID"
for i in $(seq 1 60); do kill -0 "$SERVER2_PID" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$SERVER2_PID" 2>/dev/null; then
  fail "server exits on SIGTERM"
else
  wait "$SERVER2_PID"
  check "server exits (status 0) on SIGTERM" [ $? = 0 ]
fi
SERVER2_PID=
exec 8>&-

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
