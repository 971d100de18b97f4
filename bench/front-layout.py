#!/usr/bin/env python3
"""The front's code layout: which functions a cached `qlam auth token` / `auth headers` runs,
kept together in its text (host/cli/front-layout.ld, a linker script the front's
build.rs passes on Linux).

Why: every page fault in a file-backed mapping maps up to 16 pages around it (the kernel's
fault-around, 64 KiB), so the front's peak RSS follows how many 64 KiB windows of its text the
cached path touches, not how much code it runs. Spread over the whole 800 KB text, ~265 KB of
hot code touched nearly every window (730 KB resident); gathered, 480 KB are (bench/README.md
has the numbers).

    bench/front-layout.py write [QLAM]   # run the front under callgrind, rewrite the script
    bench/front-layout.py check [QLAM]   # how much of what the cached path runs is in place

QLAM defaults to target/release/qlam (build it first: cargo build --release -p qlam). Needs
valgrind and nm. The patterns drop what changes from build to build (legacy mangling's hash,
v0's crate disambiguators, LTO's `.llvm.N` suffixes), so the script stays valid while the code
changes; a function renamed or added to the cached path is out of place until `write` runs
again, which costs RSS, never correctness (`check` says how much).
"""

import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "host", "cli", "front-layout.ld")
HOT_SECTION = ".text.front_hot"

CONFIG = """current_context = "f"
[contexts.f]
[[contexts.f.auth_providers]]
name = "cmd"
provider = "token"
command = ["sh", "-c", "echo '{\\"token\\": \\"layout-token\\", \\"expires_at\\": \\"2099-01-01T00:00:00Z\\"}'"]
"""


def executed_functions(qlam):
    """Mangled names of the functions a cached `auth token` and `auth headers` run."""
    names = set()
    with tempfile.TemporaryDirectory() as work:
        config = os.path.join(work, "config.toml")
        with open(config, "w") as f:
            f.write(CONFIG)
        # Two homes: one found through $HOME alone (as most people's), one through the
        # XDG variables; each first asks the command once, so that the runs measured serve
        # the cached answer.
        envs = []
        for variant, xdg in (("home", False), ("xdg", True)):
            env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
            env["HOME"] = os.path.join(work, variant)
            if xdg:
                for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
                    env[var] = os.path.join(work, variant, var.lower())
            os.makedirs(env["HOME"])
            subprocess.run([qlam, "--config", config, "auth", "token", "cmd"], env=env,
                           check=True, stdout=subprocess.DEVNULL)
            envs.append(env)
        for env in envs:
            for command in (["auth", "token", "cmd"], ["auth", "headers", "cmd"]):
                out = os.path.join(work, "callgrind.out")
                subprocess.run(["valgrind", "--tool=callgrind", "--demangle=no",
                                f"--callgrind-out-file={out}", qlam, "--config", config, *command],
                               env=env, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                with open(out) as f:
                    for line in f:
                        m = re.match(r"^c?fn=\(\d+\) (.*)$", line)
                        if m:
                            names.add(m.group(1))
    return names


def text_symbols(qlam):
    """name -> (address, size) of the file's functions."""
    out = subprocess.run(["nm", "-S", qlam], check=True, capture_output=True, text=True).stdout
    symbols = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTW":
            symbols[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
    return symbols


def pattern(name):
    """A section-name glob for a function, without its build-specific parts."""
    p = re.sub(r"\.llvm\.\d+$", "*", name)
    p = re.sub(r"17h[0-9a-f]{16}E\*?$", "17h*", p)
    return re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", p)


def write(qlam):
    symbols = text_symbols(qlam)
    ran = sorted(n for n in executed_functions(qlam) if n in symbols)
    hot = sorted({pattern(n) for n in ran})
    lines = [
        "/* The front's hot code together (Linux): the functions a cached `qlam auth token` and",
        " * `auth headers` run, so that they share a few 64 KiB fault-around windows. Written by",
        " * bench/front-layout.py (`write`; `check` says how much is in place); see its comments.",
        " * Functions are placed by section name, in both of rustc's text prefixes (#[cold]",
        " * functions are in .text.unlikely.*). */",
        "SECTIONS",
        "{",
        f"  {HOT_SECTION} :",
        "  {",
    ]
    # First the very functions that ran (their full names: dense while the build matches),
    # then the patterns, which also take in other instances of the same generic functions
    # and keep the script useful once hashes change (a section goes to its first match).
    # The C runtime's start-up code (`_start`, frame_dummy), in plain `.text` sections.
    lines += [f"    *{crt}(.text)" for crt in ("Scrt1.o", "crt1.o", "crti.o", "crtbeginS.o", "crtbegin.o")]
    lines += [f"    *(.text.{n} .text.unlikely.{n})" for n in ran]
    lines += [f"    *(.text.{p} .text.unlikely.{p})" for p in hot]
    # After .text: right before .init and .plt, which every start runs too.
    lines += ["  }", "}", "INSERT AFTER .text;", ""]
    with open(SCRIPT, "w") as f:
        f.write("\n".join(lines))
    print(f"{SCRIPT}: {len(ran)} functions, {len(hot)} patterns")


def check(qlam):
    out = subprocess.run(["readelf", "-SW", qlam], check=True, capture_output=True, text=True).stdout
    hot = None
    for line in out.splitlines():
        m = re.search(r"\s(\S+)\s+PROGBITS\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", line)
        if m and m.group(1) == HOT_SECTION:
            hot = (int(m.group(2), 16), int(m.group(3), 16))
    if hot is None:
        print(f"front layout: {qlam} has no {HOT_SECTION} section (not built with host/cli/front-layout.ld)")
        return 1
    symbols = text_symbols(qlam)
    ran = [symbols[n] for n in executed_functions(qlam) if n in symbols]
    inside = sum(size for addr, size in ran if hot[0] <= addr < hot[0] + hot[1])
    span = max((addr + size for addr, size in ran if hot[0] <= addr < hot[0] + hot[1]), default=hot[0]) - hot[0]
    total = sum(size for _, size in ran)
    outside = total - inside
    print(f"front layout: {inside // 1024} of {total // 1024} KiB of the cached path's code in "
          f"{HOT_SECTION}, within its first {span // 1024} KiB (of {hot[1] // 1024}); outside it: {outside // 1024} KiB")
    return 0


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("write", "check"):
        print(__doc__.strip().split("\n\n")[2], file=sys.stderr)
        return 2
    qlam = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "target", "release", "qlam")
    if sys.argv[1] == "write":
        write(qlam)
        return 0
    return check(qlam)


if __name__ == "__main__":
    sys.exit(main())
