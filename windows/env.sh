# shellcheck shell=bash disable=SC2034  # sourced: the variables are for the scripts that source it
# Sourced by build.sh and qlam-wine, and read by tests/it/windows/: where the Windows build
# and its wine prefix live, and the environment wine runs in. Every variable can be set
# beforehand.
#
#   QLAM_WIN_TARGET_DIR  cargo's target dir for the Windows build (default target/windows;
#                        ~/.cache/qlam-windows when the checkout is below a world-writable folder)
#   QLAM_WIN_PROFILE     debug (default) or release
#   WINEPREFIX           the wine prefix (default $QLAM_WIN_TARGET_DIR/wineprefix)
#   QLAM_WINE            the wine loader (default: wine64's loader, else `wine`)

QLAM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QLAM_WIN_TRIPLE=x86_64-pc-windows-gnu
if [ -z "${QLAM_WIN_TARGET_DIR:-}" ]; then
  QLAM_WIN_TARGET_DIR="$QLAM_ROOT/target/windows"
  # Wine shows a world-writable folder (/tmp, sticky or not) as writable by Everyone, and
  # qlam refuses every DLL below one: a checkout there builds into ~/.cache instead.
  d="$QLAM_ROOT"
  while [ "$d" != / ]; do
    if [ -n "$(find "$d" -maxdepth 0 -perm -0002 2>/dev/null)" ]; then
      QLAM_WIN_TARGET_DIR="$HOME/.cache/qlam-windows"
      break
    fi
    d="$(dirname "$d")"
  done
  unset d
fi
: "${QLAM_WIN_PROFILE:=debug}"
# qlam.exe and the bundled provider DLLs, side by side (qlam finds them there).
QLAM_WIN_BIN="$QLAM_WIN_TARGET_DIR/$QLAM_WIN_TRIPLE/$QLAM_WIN_PROFILE"
# The vendor example and the test fixtures: a target dir of their own, so that their DLLs never
# land beside qlam.exe (where qlam would load them as bundled providers).
QLAM_WIN_EXTRA_TARGET_DIR="$QLAM_WIN_TARGET_DIR/extra"
QLAM_WIN_EXTRA_BIN="$QLAM_WIN_EXTRA_TARGET_DIR/$QLAM_WIN_TRIPLE/$QLAM_WIN_PROFILE"

export WINEPREFIX="${WINEPREFIX:-$QLAM_WIN_TARGET_DIR/wineprefix}"
export WINEARCH=win64
# No wine debug channels: their `fixme:` lines would mix with qlam's stderr.
export WINEDEBUG="${WINEDEBUG:--all}"
# No Mono / Gecko installers (they would ask in a window) and no GUI: console programs only.
export WINEDLLOVERRIDES="${WINEDLLOVERRIDES:-mscoree,mshtml=}"
unset DISPLAY WAYLAND_DISPLAY

if [ -z "${QLAM_WINE:-}" ]; then
  # Debian's /usr/bin/wine is a shell script that picks wine (32-bit) or wine64: skip it.
  for w in /usr/lib/wine/wine64 /usr/lib64/wine/wine64 "$(command -v wine64 2>/dev/null || true)" "$(command -v wine 2>/dev/null || true)"; do
    if [ -n "$w" ] && [ -x "$w" ]; then QLAM_WINE="$w"; break; fi
  done
fi
# wine64 run directly (not through /usr/bin/wine) wants WINELOADER for its child processes.
case "${QLAM_WINE:-}" in */wine64) export WINELOADER="${WINELOADER:-$QLAM_WINE}" ;; esac
QLAM_WINESERVER="$(command -v wineserver 2>/dev/null || echo /usr/lib/wine/wineserver64)"
