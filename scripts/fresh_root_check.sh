#!/usr/bin/env bash
# Fresh-root check (issue 9): run the README's two set-up commands, `scripts/setup.sh demo` and then
# `scripts/setup.sh test`, as root in a brand-new Debian bookworm root made by
# `debootstrap --variant=minbase`, so that a package missing from scripts/setup.sh shows up here and
# not on a user's fresh machine. Too slow for CI (90 minutes for everything); run it before submitting:
#
#   sudo scripts/fresh_root_check.sh [ROOT]
#
# ROOT: a new or empty folder (default: a new /var/tmp/tessera-fresh.XXXXXX). 25-40 minutes on
# 2 cores and ~3 GB of disk. Everything runs under `nice -n 19` and in a private mount namespace
# (unshare), so no mount of the root can outlive the script or show on the host.
# What it does:
#   1. installs debootstrap if missing; debootstraps bookworm (minbase) into ROOT from the Debian
#      mirror configured in this machine's apt sources (only *.debian.org hosts; TESSERA_FRESH_MIRROR
#      overrides); the root's apt gets bookworm, bookworm-updates and bookworm-security;
#   2. copies the checkout's tracked and untracked-but-not-ignored files (git ls-files -co
#      --exclude-standard) into ROOT/work/main and the real-world test data (../shared/data beside
#      the checkout, or $TESSERA_SHARED_DATA) into ROOT/work/shared/data, where the tests look;
#      TESSERA_FRESH_TREE=head copies the last commit (git archive HEAD) instead of the working tree;
#   3. mounts /proc, /sys, /dev, /dev/pts and a /dev/shm tmpfs in the root, copies resolv.conf, adds
#      a policy-rc.d (no services start in a chroot), and copies this machine's locally added CA
#      certificates (/usr/local/share/ca-certificates, for TLS-intercepting proxies; they are only
#      used once setup.sh has installed ca-certificates, so a missing ca-certificates still shows;
#      TESSERA_FRESH_HOST_CAS=0 turns this off);
#   4. in the root, as root with a clean environment (env -i PATH HOME=/root LANG=C.UTF-8), from
#      /work/main: scripts/setup.sh demo, then scripts/setup.sh test, logs teed to files outside
#      the root (default ROOT.logs/, or TESSERA_FRESH_LOGS);
#   5. unmounts everything (trap, whatever happens), prints a summary (rc and duration of each
#      phase, ctest's summary line, skipped and failed tests) into the log folder too, and removes
#      the root when both commands passed (kept on failure, or always with TESSERA_FRESH_KEEP=1).
# Exits 0 when both commands passed, 1 when either failed, 2 on bad use.
set -euo pipefail

self=$(readlink -f "$0")
if [ -z "${TESSERA_FRESH_INNER:-}" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "$0: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
  export TESSERA_FRESH_INNER=1
  exec nice -n $((19 - $(nice))) unshare --mount --propagation private -- bash "$self" "$@"
fi

repo=$(cd "$(dirname "$self")/.." && pwd)
shared=${TESSERA_SHARED_DATA:-$repo/../shared/data}
root_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

if [ $# -gt 0 ]; then
  root=$1
  if [ -e "$root" ] && [ -n "$(ls -A "$root" 2>/dev/null)" ]; then
    echo "$0: $root exists and is not empty; give a new or empty folder" >&2; exit 2
  fi
  mkdir -p "$root"
  root=$(cd "$root" && pwd)
else
  root=$(mktemp -d /var/tmp/tessera-fresh.XXXXXX)
fi
case "$root" in /|*[[:space:]]*) echo "$0: unusable root folder '$root'" >&2; exit 2 ;; esac
logs=${TESSERA_FRESH_LOGS:-$root.logs}
mkdir -p "$logs"
logs=$(cd "$logs" && pwd)

# --- the Debian mirror this machine's apt already uses ---------------------------------------------
apt_uris() {  # every URI of an enabled "deb" source, one a line
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; break } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && awk 'BEGIN { RS = ""; FS = "\n" }
      { types = ""; uris = ""; enabled = 1
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/) types = $i
          if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
          if ($i ~ /^Enabled:[ \t]*[Nn]o/) enabled = 0
        }
        if (enabled && types ~ /(^Types:|[ \t])deb([ \t]|$)/) { n = split(uris, u, /[ \t]+/); for (j = 1; j <= n; j++) if (u[j] != "") print u[j] } }' "$f"
  done
  return 0
}
debian_host='^https?://([A-Za-z0-9-]+\.)*debian\.org(/|$)'
mirror=${TESSERA_FRESH_MIRROR:-$(apt_uris | grep -E "$debian_host" | grep -v -- -security | head -1 || true)}
security=$(apt_uris | grep -E "$debian_host" | grep -- -security | head -1 || true)
mirror=${mirror%/}; security=${security%/}
[ -n "$mirror" ] || { echo "$0: no *.debian.org mirror in /etc/apt/sources.list{,.d}; set TESSERA_FRESH_MIRROR" >&2; exit 2; }

# --- timing and summary -------------------------------------------------------------------------------
t_start=$(date +%s)
declare -A took=()
fmt() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
phase_start() { phase_t0=$(date +%s); echo; echo "=== [fresh-root] $1 ($(date '+%H:%M:%S'))"; }
phase_end() { took[$1]=$(fmt $(($(date +%s) - phase_t0))); }
demo_rc=- test_rc=- stage=setup

summary() {
  local tlog=$logs/test.log ctest_line skipped failed
  ctest_line=$(grep -E 'tests passed, [0-9]+ tests failed out of' "$tlog" 2>/dev/null | tail -1 || true)
  skipped=$(grep -cE '^[[:space:]]*[0-9]+ - .*\(Skipped\)' "$tlog" 2>/dev/null || true)
  failed=$(sed -n '/^The following tests FAILED:/,/^Errors while running CTest/p' "$tlog" 2>/dev/null |
           grep -E '^[[:space:]]*[0-9]+ - ' || true)
  {
    echo
    echo "=== [fresh-root] summary (root $root, logs $logs)"
    echo "mirror $mirror${security:+, security $security}; stopped at: $stage"
    printf 'debootstrap %s, copy %s, demo rc=%s (%s), test rc=%s (%s), total %s\n' \
      "${took[debootstrap]:--}" "${took[copy]:--}" "$demo_rc" "${took[demo]:--}" "$test_rc" "${took[test]:--}" \
      "$(fmt $(($(date +%s) - t_start)))"
    echo "ctest: ${ctest_line:-no summary line (see $tlog)}; skipped: ${skipped:-0}"
    if [ -f "$tlog" ]; then
      grep -E '^[[:space:]]*[0-9]+ - .*\(Skipped\)' "$tlog" | sed 's/^[[:space:]]*/  skipped: /' || true
      grep -m3 'SKIPPED:' "$tlog" | sed 's/^/  /' || true
    fi
    [ -z "$failed" ] || { echo "failed tests:"; echo "$failed" | sed 's/^[[:space:]]*/  /'; }
    if [ "$demo_rc" = 0 ] && [ "$test_rc" = 0 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL"; fi
  } | tee "$logs/summary.txt"
}

# --- mounts and clean-up --------------------------------------------------------------------------------
mounts_under_root() {  # mount points at or below $root, deepest first
  awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}
kill_root_procs() {  # processes this run left running inside the root (e.g. a stray Xvfb), by id
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] || continue
    echo "[fresh-root] ending leftover process ${p#/proc/}: $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null | cut -c1-100)"
    kill "${p#/proc/}" 2>/dev/null || true
  done
}
umount_all() {
  local m
  for m in $(mounts_under_root); do umount "$m" 2>/dev/null || umount -l "$m" || true; done
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  kill_root_procs; sleep 1; umount_all
  summary
  if [ -n "$(mounts_under_root)" ]; then
    echo "[fresh-root] WARNING: still mounted under $root (private namespace, gone when this exits): $(mounts_under_root | tr '\n' ' ')"
  elif [ "$rc" -eq 0 ] && [ "${TESSERA_FRESH_KEEP:-0}" != 1 ]; then
    echo "[fresh-root] removing $root"
    rm -rf --one-file-system "$root"
  else
    echo "[fresh-root] kept $root (remove it with: rm -rf --one-file-system $root)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. debootstrap --------------------------------------------------------------------------------------
stage="debootstrap"
phase_start "debootstrap --variant=minbase bookworm $root $mirror"
if ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >"$logs/host-apt.log" 2>&1 ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >>"$logs/host-apt.log" 2>&1; }
fi
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$logs/debootstrap.log" 2>&1 ||
  { tail -20 "$logs/debootstrap.log"; echo "[fresh-root] debootstrap failed, log $logs/debootstrap.log"; exit 1; }
{
  echo "deb $mirror bookworm main"
  echo "deb $mirror bookworm-updates main"
  [ -z "$security" ] || echo "deb $security bookworm-security main"
} >"$root/etc/apt/sources.list"
phase_end debootstrap

# --- 2. the checkout and the test data --------------------------------------------------------------------
stage="copy"
phase_start "copying $repo and $shared into the root"
mkdir -p "$root/work/main" "$root/work/shared"
if [ "${TESSERA_FRESH_TREE:-work}" = head ]; then  # the last commit only
  git -c safe.directory="$repo" -C "$repo" archive --format=tar HEAD | tar -C "$root/work/main" -xf -
  echo "HEAD $(git -c safe.directory="$repo" -C "$repo" rev-parse --short HEAD)"
else  # the working tree as it is: tracked files and untracked ones that are not ignored
  git -c safe.directory="$repo" -C "$repo" ls-files -z -co --exclude-standard |
    while IFS= read -r -d '' f; do if [ -e "$repo/$f" ] || [ -L "$repo/$f" ]; then printf '%s\0' "$f"; fi; done |
    tar -C "$repo" --null -T - -cf - | tar -C "$root/work/main" -xf -
fi
echo "$(find "$root/work/main" -type f | wc -l) files in /work/main"
if [ -d "$shared" ]; then
  cp -a "$(readlink -f "$shared")" "$root/work/shared/data"
  echo "$(du -sh "$root/work/shared/data" | cut -f1) of test data in /work/shared/data"
else
  echo "[fresh-root] WARNING: no test data at $shared; the tests that need it will skip"
fi
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\n# fresh_root_check.sh: no services start in this chroot\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
if [ "${TESSERA_FRESH_HOST_CAS:-1}" != 0 ] && ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  echo "copied this machine's local CA certificates: $(cd /usr/local/share/ca-certificates && echo *.crt)"
fi
phase_end copy

# --- 3. mounts ------------------------------------------------------------------------------------------------
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys" 2>/dev/null || mount --rbind /sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
if [ -d "$root/dev/shm" ]; then mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"; fi

# --- 4. the README's commands ------------------------------------------------------------------------------
in_root() {  # LOG COMMAND: run COMMAND in /work/main inside the root, clean environment, tee LOG
  set +e
  chroot "$root" /usr/bin/env -i PATH="$root_path" HOME=/root LANG=C.UTF-8 \
    /bin/bash -c "cd /work/main && $2" </dev/null 2>&1 | tee "$1"
  local rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}
stage="demo"
phase_start "scripts/setup.sh demo (log $logs/demo.log)"
demo_rc=0; in_root "$logs/demo.log" "scripts/setup.sh demo" || demo_rc=$?
phase_end demo
stage="test"
phase_start "scripts/setup.sh test (log $logs/test.log)"
test_rc=0; in_root "$logs/test.log" "scripts/setup.sh test" || test_rc=$?
phase_end test
stage="done"
[ "$demo_rc" = 0 ] && [ "$test_rc" = 0 ]
