# Sourced by the benchmarks that need the real OAuth test server (tests/oauth-server) over
# TLS on loopback: bench/oauth.sh and bench/python.sh.
#
#   make_certs DIR          a CA (DIR/ca.pem) and a certificate for 127.0.0.1
#                           (DIR/server.pem, DIR/server.key), valid two days
#   start_oauth_server DIR  starts the server with them (access tokens live an hour); sets
#                           server_pid and issuer. The caller's EXIT trap kills server_pid.

make_certs() {
  local dir=$1
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 2 -subj "/CN=qlam bench CA" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' > "$dir/ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -out "$dir/server.pem" -days 2 -extfile "$dir/ext" 2>/dev/null
}

start_oauth_server() {
  local dir=$1
  node tests/oauth-server/server.mjs --tls-cert "$dir/server.pem" --tls-key "$dir/server.key" \
    --access-token-ttl 3600 --ignore-stdin > "$dir/ready" 2> "$dir/server.err" &
  server_pid=$!
  for _ in $(seq 1 100); do [ -s "$dir/ready" ] && break; sleep 0.1; done
  issuer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["issuer"])' "$dir/ready")
}
