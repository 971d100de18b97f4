"""Per-call and import-time benchmarks of the Python package `qlam`, beside MSAL Python and
beside floors measured in the same run. Run by bench/python.sh, which builds everything, sets
up a throwaway home (HOME, XDG_*), the qlam configuration, QLAM_EXE and a TLS certificate, and
logs the OAuth provider in; see bench/README.md.

    python python_bench.py --ca CA --cert CERT --key KEY --work DIR [--quick] [--oauth NAME]
    python python_bench.py stub --cert CERT --key KEY --log FILE   (the MSAL discovery stub)

Per-call timings are timeit loops (the statement compiled into the loop, no lambda around
it): the iteration count is chosen so one repeat lasts >= 0.2 s, then 7 repeats; the median
per call is reported, with the fastest and slowest repeat.
"""

from __future__ import annotations

import argparse
import base64
import http.server
import json
import os
import ssl
import statistics
import subprocess
import sys
import time
import timeit
from importlib import metadata

# ---------------------------------------------------------------------------------------------
# The MSAL discovery stub: MSAL fetches the authority's OpenID configuration when an
# application object is built. There is no internet here, and MSAL only accepts an https
# authority, so this serves that one document over TLS on loopback and logs every request
# (one line each, flushed), so the benchmark can show that a cache hit makes none.

TENANT = "qlam-bench-tenant"


def run_stub(cert: str, key: str, log_path: str) -> None:
    log = open(log_path, "a", buffering=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            log.write(f"GET {self.path}\n")
            host = f"https://127.0.0.1:{self.server.server_address[1]}/{TENANT}"
            if self.path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
                body = json.dumps({
                    "issuer": f"{host}/v2.0",
                    "authorization_endpoint": f"{host}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{host}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{host}/oauth2/v2.0/devicecode",
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
            else:
                body = b'{"error": "not_found"}'
                self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 — a token request would be a failure: logged, refused
            log.write(f"POST {self.path}\n")
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


# ---------------------------------------------------------------------------------------------
# Timing helpers

REPEAT = 7
MIN_REPEAT_SECONDS = 0.2


def per_call(stmt: str, env: dict, quick: bool) -> tuple[float, float, float]:
    """(median, min, max) seconds per execution of `stmt` over the repeats."""
    timer = timeit.Timer(stmt, globals=env)
    if quick:
        number, repeat = 2000, 3
    else:
        number = 1
        while timer.timeit(number) < MIN_REPEAT_SECONDS:
            number *= 2
        repeat = REPEAT
    runs = [t / number for t in timer.repeat(repeat, number)]
    return statistics.median(runs), min(runs), max(runs)


def wall_times(argv: list[str], runs: int) -> list[float]:
    """Wall-clock seconds of each of `runs` runs of a command (after 3 unmeasured runs, so
    the page cache and the .pyc files are warm)."""
    for _ in range(3):
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - start)
    return out


def importtime_cumulative(statement: str, modules: list[str], runs: int) -> dict[str, float]:
    """Median over `runs` processes of what `python -X importtime -c STATEMENT` reports as
    the cumulative import time (seconds) of each of `modules`, wherever it sits in the tree:
    the imports themselves, without the interpreter's start and exit."""
    found: dict[str, list[int]] = {m: [] for m in modules}
    for _ in range(runs):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", statement],
                             check=True, capture_output=True, text=True).stderr
        for line in err.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[2].strip() in found and parts[1].strip().isdigit():
                found[parts[2].strip()].append(int(parts[1]))
    return {m: statistics.median(v) / 1e6 for m, v in found.items() if v}


def machine_and_own_cpu() -> tuple[float, float, float] | None:
    """(wall seconds, CPU seconds the whole machine was busy, CPU seconds of this process and
    its finished children), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]  # idle, iowait
    busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    t = os.times()
    return time.monotonic(), busy, t.user + t.system + t.children_user + t.children_system


def count_lines(path: str) -> int:
    with open(path) as f:
        return sum(1 for _ in f)


def fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.2f} µs"
    return f"{seconds * 1e9:.0f} ns"


# ---------------------------------------------------------------------------------------------
# MSAL: a PublicClientApplication whose token cache (loaded from a file) holds a valid
# access token for the account, as after an interactive login.

CLIENT_ID = "00000000-0000-0000-0000-00000000b3c4"
SCOPES = ["User.Read"]
MSAL_ACCESS_TOKEN = "msal-bench-access-token"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def seeded_token_response(authority: str) -> dict:
    """A token response as Entra ID returns it after an authorization-code login: MSAL
    decodes (never verifies) the ID token and client_info to make the account."""
    now = int(time.time())
    oid, tid = "11111111-2222-3333-4444-555555555555", TENANT
    claims = {"iss": f"{authority}/v2.0", "aud": CLIENT_ID, "sub": "bench-subject", "oid": oid,
              "tid": tid, "preferred_username": "alice@example.com", "name": "Alice",
              "iat": now, "nbf": now, "exp": now + 3600}
    id_token = ".".join([b64url(b'{"alg":"none","typ":"JWT"}'),
                         b64url(json.dumps(claims).encode()), b64url(b"sig")])
    return {"token_type": "Bearer", "scope": " ".join(SCOPES), "expires_in": 3600,
            "ext_expires_in": 3600, "access_token": MSAL_ACCESS_TOKEN,
            "refresh_token": "msal-bench-refresh-token", "id_token": id_token,
            "client_info": b64url(json.dumps({"uid": oid, "utid": tid}).encode())}


def msal_cases(args: argparse.Namespace, results: list, quick: bool) -> None:
    import msal
    import msal_extensions

    # requests lets $REQUESTS_CA_BUNDLE / $CURL_CA_BUNDLE override the session's `verify`,
    # which is how MSAL passes `verify=`: with either set (CI images do), the stub's CA
    # would be ignored.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        os.environ.pop(name, None)
    log_path = os.path.join(args.work, "stub-requests.log")
    open(log_path, "w").close()
    stub = subprocess.Popen([sys.executable, os.path.abspath(__file__), "stub", "--cert",
                             args.cert, "--key", args.key, "--log", log_path],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(stub.stdout.readline())
        authority = f"https://127.0.0.1:{port}/{TENANT}"

        def app(cache):
            # instance_discovery=False: the authority is not a Microsoft host, so MSAL would
            # otherwise ask login.microsoftonline.com whether it is a known one.
            return msal.PublicClientApplication(CLIENT_ID, authority=authority,
                                                instance_discovery=False, verify=args.ca,
                                                token_cache=cache)

        # Seed: MSAL's own cache API records the login, as acquire_token_by_* would, and
        # the serialized cache goes to a file (what the MSAL docs' persistence recipe does).
        seeding = msal.SerializableTokenCache()
        seeder = app(seeding)
        seeding.add({"client_id": CLIENT_ID, "scope": SCOPES,
                     "token_endpoint": seeder.authority.token_endpoint,
                     "environment": seeder.authority.instance, "grant_type": "authorization_code",
                     "data": {}, "response": seeded_token_response(authority)})
        serialized = seeding.serialize()
        plain_path = os.path.join(args.work, "msal-cache.json")
        with open(plain_path, "w") as f:
            f.write(serialized)
        persisted_path = os.path.join(args.work, "msal-extensions-cache.bin")
        msal_extensions.FilePersistence(persisted_path).save(serialized)

        # A program's start: the cache loaded from the file, then the application built.
        loaded = msal.SerializableTokenCache()
        with open(plain_path) as f:
            loaded.deserialize(f.read())
        # msal-extensions' file persistence (no keyring, no encryption): the cache re-reads
        # the file when its mtime changed, which costs a stat() on every look-up.
        persisted = msal_extensions.PersistedTokenCache(
            msal_extensions.FilePersistence(persisted_path))

        for label, cache in [
            ("msal `acquire_token_silent` — SerializableTokenCache loaded from a file", loaded),
            ("msal `acquire_token_silent` — msal-extensions PersistedTokenCache(FilePersistence)",
             persisted),
        ]:
            before_build = count_lines(log_path)
            application = app(cache)
            built = count_lines(log_path) - before_build
            accounts = application.get_accounts()
            assert len(accounts) == 1, accounts
            account = accounts[0]
            result = application.acquire_token_silent(SCOPES, account)
            assert result and result["access_token"] == MSAL_ACCESS_TOKEN, result
            assert result["token_source"] == "cache", result
            before = count_lines(log_path)
            env = {"app": application, "scopes": SCOPES, "account": account}
            timing = per_call("app.acquire_token_silent(scopes, account)", env, quick)
            after = count_lines(log_path)
            assert after == before, f"{after - before} HTTP requests during the timed loop"
            print(f"  {label}: building the application made {built} request(s) (discovery);"
                  f" the timed loop made {after - before}", file=sys.stderr)
            results.append((label, timing))
    finally:
        stub.terminate()
        stub.wait()


# ---------------------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "stub":
        p = argparse.ArgumentParser()
        p.add_argument("stub")
        p.add_argument("--cert", required=True)
        p.add_argument("--key", required=True)
        p.add_argument("--log", required=True)
        a = p.parse_args()
        run_stub(a.cert, a.key, a.log)
        return

    p = argparse.ArgumentParser()
    p.add_argument("--ca", required=True, help="CA file that signed --cert")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--work", required=True, help="a scratch folder")
    p.add_argument("--oauth", help="an OAuth provider holding a valid cached token")
    p.add_argument("--command-count", required=True,
                   help="file the `cmd` provider's command appends a line to on each run")
    p.add_argument("--rust-criterion", help="criterion's output folder, holding the same "
                   "calls made from Rust in this run (bench/python.sh runs them)")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    quick = args.quick

    import qlam

    # Other work on this 2-core machine shows in the numbers (the `env` rows most: their
    # hand-over to a worker thread wants the other core), so how busy the machine was with
    # other processes goes with them. (The load average would count the build just before.)
    cpu_before = machine_and_own_cpu()
    results: list[tuple[str, tuple[float, float, float]]] = []

    # Floors. The one the ratios use: a Python method that returns a new 1-entry dict, the
    # least a pure-Python `get_headers(provider)` could do.
    class Floor:
        def __init__(self) -> None:
            self.value = "Bearer floor"

        def get_headers(self, provider: str) -> dict:
            return {"Authorization": self.value}

    floor_label = "floor: Python method returning a 1-entry dict"
    one = {"Authorization": "Bearer floor"}
    results.append(("floor: empty statement (the timing loop itself)", per_call("pass", {}, quick)))
    results.append(("floor: `d.copy()` of a 1-entry dict (a C method)",
                    per_call("d.copy()", {"d": one}, quick)))
    results.append((floor_label, per_call("f.get_headers(p)", {"f": Floor(), "p": "x"}, quick)))

    # The same calls from Rust (`AuthClient::headers()`, criterion, same run): the Python
    # layer's cost is the difference.
    for bench, what in [("headers_cached_answer_1_thread", "a reusable answer"),
                        ("headers_provider_called_each_time", "the token provider's `env` source, "
                                                              "asked every call")]:
        path = os.path.join(args.rust_criterion or "", "client", bench, "new", "estimates.json")
        if args.rust_criterion and os.path.exists(path):
            with open(path) as f:
                est = json.load(f)["median"]
            results.append((f"Rust `AuthClient::headers()` — {what} (criterion `client/{bench}`, "
                            "its median and 95 % interval)",
                            (est["point_estimate"] / 1e9, est["confidence_interval"]["lower_bound"] / 1e9,
                             est["confidence_interval"]["upper_bound"] / 1e9)))

    client = qlam.AuthClient(interactive=False)
    api_key = os.environ["QLAM_TEST_API_KEY"]
    checks = {"cmd": {"Authorization": "Bearer from-command"}, "env-key": {"X-API-Key": api_key}}
    cases = [
        ("cmd", "token provider, `command` source whose answer carries an expiry (valid token, "
                "answer reused)"),
        ("env-key", "token provider, `env` source (no expiry: the provider is asked on every "
                    "call)"),
    ]
    if args.oauth:
        cases.insert(1, (args.oauth, "oauth provider, valid cached access token (its server "
                                     "stopped)"))
    for name, what in cases:
        headers = client.get_headers(name)  # also the warm-up: the library loaded, the answer cached
        if name in checks:
            assert headers == checks[name], headers
        else:
            assert headers["Authorization"].startswith("Bearer ") and len(headers) == 1, headers
        runs_before = count_lines(args.command_count)
        env = {"c": client, "n": client._native, "p": name}
        results.append((f"qlam `get_headers` — {what}", per_call("c.get_headers(p)", env, quick)))
        # The native method alone: what the Python wrapper (one method call) adds.
        results.append((f"qlam `_native.headers` (no wrapper) — {name}",
                        per_call("n.headers(p)", env, quick)))
        if name == "cmd":
            # The command ran once (warm-up) at most: every timed call reused its answer.
            ran = count_lines(args.command_count) - runs_before
            assert ran == 0, f"the provider's command ran {ran} times during the timed loop"

    msal_cases(args, results, quick)

    # Import time: whole `python -c ...` processes, beside `python -c pass`, and what
    # -X importtime reports for the module itself.
    import_runs = 5 if quick else 40
    imports = []
    for label, code in [("`python -c pass` (floor)", "pass"), ("`python -c 'import qlam'`", "import qlam"),
                        ("`python -c 'import pydantic'` (qlam's dependency)", "import pydantic"),
                        # qlam's credential models are pydantic models, defined at import: the
                        # first model class pays for pydantic's lazily imported machinery.
                        ("`python -c` pydantic imported and one `BaseModel` defined",
                         "from pydantic import BaseModel\nclass M(BaseModel):\n    a: int"),
                        ("`python -c 'import msal'`", "import msal"),
                        ("`python -c 'import msal_extensions'`", "import msal_extensions")]:
        xs = wall_times([sys.executable, "-c", code], import_runs)
        imports.append((label, statistics.median(xs), min(xs), max(xs)))
    # Where `import qlam` spends its time (pydantic is imported by qlam.models, whose
    # models are built at import), and msal's for comparison.
    breakdown = importtime_cumulative("import qlam", ["qlam", "qlam._native", "qlam.models",
                                                      "pydantic"], 5 if quick else 20)
    breakdown.update(importtime_cumulative("import msal", ["msal", "requests"], 5 if quick else 20))

    floor = dict(results)[floor_label][0]
    print()
    print(f"Per call (timeit, {'3 × 2000 (quick)' if quick else f'{REPEAT} repeats of >= {MIN_REPEAT_SECONDS} s'};"
          " median per call, fastest and slowest repeat):")
    print()
    print("| case | median | min – max | × floor |")
    print("|---|---|---|---|")
    for label, (med, lo, hi) in results:
        print(f"| {label} | {fmt(med)} | {fmt(lo)} – {fmt(hi)} | {med / floor:.1f} |")
    print()
    print(f"Import (wall clock of the whole process, {import_runs} runs after 3 warm-ups, median):")
    print()
    print("| command | median | min – max | above the floor |")
    print("|---|---|---|---|")
    base = imports[0][1]
    for label, med, lo, hi in imports:
        print(f"| {label} | {fmt(med)} | {fmt(lo)} – {fmt(hi)} | {fmt(med - base) if med != base else '—'} |")
    print()
    print("`python -X importtime`, cumulative, median: " + ", ".join(
        f"`{m}` {fmt(v)}" for m, v in breakdown.items()))
    print()
    cpu_after = machine_and_own_cpu()
    if cpu_before and cpu_after:
        wall = cpu_after[0] - cpu_before[0]
        others = (cpu_after[1] - cpu_before[1]) - (cpu_after[2] - cpu_before[2])
        print(f"Other processes used {max(others, 0) / wall:.2f} of the {os.cpu_count()} CPUs on"
              f" average during the {wall:.0f} s of measurements.")
    print(f"Python {sys.version.split()[0]}; "
          + ", ".join(f"{d} {metadata.version(d)}"
                      for d in ("qlam", "pydantic", "msal", "msal-extensions")))


if __name__ == "__main__":
    main()
