#!/usr/bin/env bash
# Cross-builds qlam.exe and the bundled provider DLLs for
# x86_64-pc-windows-gnu and prepares a wine prefix to run them in (windows/README.md).
#
#   windows/build.sh [--release] [--no-extras] [--no-prefix] [--deps-only]
#
#   --release    the release profile (default: dev, as the tests use)
#   --no-extras  skip the vendor example and the test fixtures (built into target/windows/extra)
#   --no-prefix  only build; do not touch wine
#   --deps-only  only install what is missing (Debian packages, the Rust target); build nothing
#
#   QLAM_WIN_LOCKED=0  let cargo update Cargo.lock (default: --locked, the lockfiles as they are)
#
# Idempotent: packages are installed only when a command is missing (Debian; needs root),
# the prefix is created once, the shim rebuilt only when its source changes.
set -euo pipefail

extras=1
prefix=1
deps_only=0
for arg in "$@"; do
  case "$arg" in
    --release) export QLAM_WIN_PROFILE=release ;;
    --no-extras) extras=0 ;;
    --no-prefix) prefix=0 ;;
    --deps-only) deps_only=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument \`$arg\`" >&2; exit 2 ;;
  esac
done

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=windows/env.sh
. "$here/env.sh"
cd "$QLAM_ROOT"

step() { echo "== windows: $*"; }

# --- packages ---------------------------------------------------------------------------
need_apt=()
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need_apt+=(gcc-mingw-w64-x86-64)
if [ "$prefix" = 1 ]; then
  # `wine` brings wineboot and wineserver; wine64 the 64-bit loader. No recommends: they are
  # the GUI, sound, fonts, gstreamer, none of which a console program needs.
  { [ -x /usr/lib/wine/wine64 ] || command -v wine64 >/dev/null 2>&1; } || need_apt+=(wine64)
  command -v wineboot >/dev/null 2>&1 || need_apt+=(wine)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing ${need_apt[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "build.sh: needs the Debian packages ${need_apt[*]}; run as root or install them" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The new packages' paths.
  unset QLAM_WINE
  # shellcheck source=windows/env.sh
  . "$here/env.sh"
fi
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$QLAM_WIN_TRIPLE"; then
  step "rustup target add $QLAM_WIN_TRIPLE"
  rustup target add "$QLAM_WIN_TRIPLE"
fi
[ "$deps_only" = 1 ] && { step "dependencies present"; exit 0; }

# --- cargo ------------------------------------------------------------------------------
# As .ci/run: no incremental caches, line tables only (full debug info makes each .exe/.dll
# 25-100 MB). rustc's default linker for this target is x86_64-w64-mingw32-gcc, and the cc
# crate (ring) finds the same compiler by the target name: no linker setting is needed.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
profile_flag=()
[ "$QLAM_WIN_PROFILE" = release ] && profile_flag=(--release)
# --locked: this script never rewrites a Cargo.lock (QLAM_WIN_LOCKED=0 lets cargo update it,
# as a plain `cargo build` would).
[ "${QLAM_WIN_LOCKED:-1}" = 1 ] && profile_flag+=(--locked)

step "cargo build: qlam.exe and the bundled providers"
CARGO_TARGET_DIR="$QLAM_WIN_TARGET_DIR" cargo build "${profile_flag[@]}" --target "$QLAM_WIN_TRIPLE" \
  -p qlam -p qlam-provider-token -p qlam-provider-basic -p qlam-provider-oauth

if [ "$extras" = 1 ]; then
  step "cargo build: the vendor example (examples/vendor-provider)"
  CARGO_TARGET_DIR="$QLAM_WIN_EXTRA_TARGET_DIR" cargo build "${profile_flag[@]}" --target "$QLAM_WIN_TRIPLE" \
    --manifest-path examples/vendor-provider/Cargo.toml
  step "cargo build: the test fixtures (tests/fixtures)"
  CARGO_TARGET_DIR="$QLAM_WIN_EXTRA_TARGET_DIR" cargo build "${profile_flag[@]}" --target "$QLAM_WIN_TRIPLE" \
    --manifest-path tests/fixtures/Cargo.toml --workspace
fi

[ "$prefix" = 1 ] || { step "built into $QLAM_WIN_BIN"; exit 0; }

# --- wine prefix ------------------------------------------------------------------------
if [ -z "${QLAM_WINE:-}" ]; then
  echo "build.sh: no wine loader found (install wine64)" >&2
  exit 1
fi
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  step "creating the wine prefix $WINEPREFIX"
  mkdir -p "$(dirname "$WINEPREFIX")"
  # Without wine32 (multiarch) wineboot says it cannot start syswow64\rundll32.exe: harmless
  # for 64-bit programs.
  "$QLAM_WINE" wineboot.exe --init >/dev/null 2>&1 || true
  "$QLAM_WINESERVER" -w
  [ -f "$WINEPREFIX/system.reg" ] || { echo "build.sh: wineboot did not create $WINEPREFIX" >&2; exit 1; }
fi
# No winedbg on a crash: it would print a register dump and backtrace into the crashed
# program's stdout. Without a debugger the process just ends with the exception code (a page
# fault: exit code 5) and wine writes one line to stderr.
aedebug='HKLM\Software\Microsoft\Windows NT\CurrentVersion\AeDebug'
if "$QLAM_WINE" reg.exe query "$aedebug" /v Debugger 2>/dev/null | grep -q winedbg; then
  step "turning off winedbg for crashes (AeDebug\\Debugger)"
  "$QLAM_WINE" reg.exe add "$aedebug" /v Debugger /t REG_SZ /d '' /f >/dev/null
  "$QLAM_WINESERVER" -w
fi

# --- bcryptprimitives.dll shim ----------------------------------------------------------
# Rust's std (1.78+) imports ProcessPrng from bcryptprimitives.dll; wine before 9.x has no
# such DLL and every Rust program fails to start (status c0000135, exit code 53).
wine_has_processprng() {
  local d
  for d in /usr/lib/x86_64-linux-gnu/wine/x86_64-windows /usr/lib/wine/x86_64-windows /usr/lib64/wine/x86_64-windows /opt/wine*/lib*/wine/x86_64-windows; do
    [ -f "$d/bcryptprimitives.dll" ] || continue
    x86_64-w64-mingw32-objdump -p "$d/bcryptprimitives.dll" 2>/dev/null | grep -qw ProcessPrng && return 0
  done
  return 1
}
sys32="$WINEPREFIX/drive_c/windows/system32"
if wine_has_processprng; then
  step "wine has ProcessPrng: no shim"
else
  shim_dir="$QLAM_WIN_TARGET_DIR/shim"
  shim="$shim_dir/bcryptprimitives.dll"
  mkdir -p "$shim_dir"
  if [ ! -f "$shim" ] || [ "$here/bcryptprimitives.c" -nt "$shim" ] || [ "$here/bcryptprimitives.def" -nt "$shim" ]; then
    step "building the bcryptprimitives.dll shim (ProcessPrng -> BCryptGenRandom)"
    x86_64-w64-mingw32-gcc -O2 -shared -s -Wl,--no-insert-timestamp -o "$shim" \
      "$here/bcryptprimitives.c" "$here/bcryptprimitives.def" -lbcrypt
  fi
  if ! cmp -s "$shim" "$sys32/bcryptprimitives.dll"; then
    step "installing the shim into $sys32"
    cp "$shim" "$sys32/bcryptprimitives.dll"
  fi
fi

# --- check ------------------------------------------------------------------------------
rc=0
version="$("$here/qlam-wine" --version)" || rc=$?
if [ "$rc" != 0 ]; then
  echo "build.sh: \`wine qlam.exe --version\` failed (exit $rc); run it with WINEDEBUG=err+all to see why" >&2
  exit 1
fi
step "$version runs under $("$QLAM_WINE" --version 2>/dev/null || echo wine): $QLAM_WIN_BIN"
