#!/usr/bin/env bash
# The Windows test tier: Windows deno.exe under Wine 10 in a Debian trixie chroot.
#
#   wine.sh setup                  build (or reuse) the cached chroot, Wine prefix and deno.exe
#   wine.sh exec -- CMD ARGS...    run a Windows command under Wine (repo at the same path)
#   wine.sh deno -- ARGS...        run deno.exe with ARGS
#   wine.sh winpath PATH           print the Windows (Z:\...) form of a Linux path
#   wine.sh build-dlls             build the tier's DLLs with mingw (test DLL, HNS emulator)
#   wine.sh test [FILES...]        setup, build, then `deno test -A` under Wine (without FILES,
#                                  also the host-side tests/hns-emulator/*_wine_test.ts)
#   wine.sh stop                   end the persistent wineserver
#
# Environment: HNSPROXY_WINE_CACHE (default /var/cache/hnsproxy-wine),
# HNSPROXY_WINE_TIMEOUT (seconds per Wine command, default 900),
# HNSPROXY_WINE_TEARDOWN_GRACE (seconds a test run may hang on exit after a passing summary, 60),
# HNSPROXY_WINE_DENO_VERSIONS (npm versions of @deno/win32-x64 to try, in order).
# Facts behind the choices: shared/reference/windows-under-wine.md.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
CACHE="${HNSPROXY_WINE_CACHE:-/var/cache/hnsproxy-wine}"
ROOTFS="$CACHE/chroot"
STATE="$CACHE/state" # bind-mounted into the chroot at the same path
PREFIX="$STATE/prefix"
DENO_EXE="$STATE/deno/deno.exe"
WIN_DENO_DIR="$STATE/deno-dir"
RUNTIME_DIR="$STATE/runtime"
WINE_TIMEOUT="${HNSPROXY_WINE_TIMEOUT:-900}"
TEARDOWN_GRACE="${HNSPROXY_WINE_TEARDOWN_GRACE:-60}"
# 2.9.6 first (the project's version); the npm registry reachable here may only hold older builds.
DENO_VERSIONS="${HNSPROXY_WINE_DENO_VERSIONS:-2.9.6 2.9.5}"
MIRROR="${HNSPROXY_WINE_MIRROR:-http://deb.debian.org/debian}"
BUILD_DIR="$REPO/build/windows"

log() { printf '[wine.sh] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Linux path -> Windows path through Wine's Z: drive (the chroot's root).
winpath() {
  local p
  p="$(realpath -m "$1")"
  printf 'Z:%s' "${p//\//\\}"
}

apt_install_host() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "apt-get install ${missing[*]} (host)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
}

setup_chroot() {
  if [[ -f "$ROOTFS/.hnsproxy-wine-ready" ]]; then
    return 0
  fi
  apt_install_host debootstrap
  if [[ ! -f "$ROOTFS/.hnsproxy-debootstrap-done" ]]; then
    rm -rf "$ROOTFS"
    mkdir -p "$ROOTFS"
    log "debootstrap trixie -> $ROOTFS (about half a minute)"
    debootstrap --variant=minbase trixie "$ROOTFS" "$MIRROR" </dev/null >"$CACHE/debootstrap.log" 2>&1 ||
      die "debootstrap failed, see $CACHE/debootstrap.log"
    touch "$ROOTFS/.hnsproxy-debootstrap-done"
  fi
  cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf" 2>/dev/null || true
  log "installing Wine in the chroot (about half a minute)"
  in_chroot env DEBIAN_FRONTEND=noninteractive bash -c \
    'apt-get update -qq && apt-get install -y -qq --no-install-recommends wine wine64 && apt-get clean' \
    </dev/null >"$CACHE/apt-wine.log" 2>&1 || die "installing Wine failed, see $CACHE/apt-wine.log"
  touch "$ROOTFS/.hnsproxy-wine-ready"
}

setup_deno() {
  [[ -f "$DENO_EXE" ]] && return 0
  command -v npm >/dev/null || die "npm is needed to fetch @deno/win32-x64"
  local tmp version
  tmp="$(mktemp -d)"
  for version in $DENO_VERSIONS; do
    if (cd "$tmp" && npm pack --silent "@deno/win32-x64@$version" </dev/null >/dev/null 2>&1); then
      log "fetched @deno/win32-x64@$version"
      break
    fi
    log "@deno/win32-x64@$version is not in the npm registry, trying the next version"
  done
  local tgz
  tgz="$(ls "$tmp"/*.tgz 2>/dev/null | head -1)" || true
  [[ -n "$tgz" ]] || die "could not fetch any of @deno/win32-x64@{$DENO_VERSIONS}"
  tar -xzf "$tgz" -C "$tmp" package/deno.exe
  mkdir -p "$(dirname "$DENO_EXE")"
  mv "$tmp/package/deno.exe" "$DENO_EXE.part"
  mv "$DENO_EXE.part" "$DENO_EXE"
  rm -rf "$tmp"
}

setup_prefix() {
  [[ -f "$STATE/.prefix-ready" ]] && return 0
  rm -rf "$PREFIX"
  log "wineboot --init"
  in_chroot_wine wineboot --init </dev/null >"$CACHE/wineboot.log" 2>&1 || die "wineboot failed, see $CACHE/wineboot.log"
  in_chroot_wine wineserver -w </dev/null >/dev/null 2>&1 || true
  touch "$STATE/.prefix-ready"
}

# The project's npm packages (deno.lock) in the Windows deno's cache. deno.exe under Wine may not be
# able to fetch them itself (its TLS roots need not include a proxy's CA that the host trusts), so
# the host's deno fetches them into a scratch DENO_DIR and its npm/ folder is copied over: the npm
# cache has the same layout on every OS. Redone when deno.lock changes.
setup_npm_cache() {
  local lock="$REPO/deno.lock" marker="$STATE/.npm-cache"
  [[ -f "$lock" ]] || return 0
  local sum
  sum="$(sha256sum "$lock" | cut -d' ' -f1)"
  [[ -f "$marker" && "$(cat "$marker")" == "$sum" ]] && return 0
  local -a host_deno=(deno)
  command -v deno >/dev/null || host_deno=(npx -y deno@2.9.6)
  local tmp
  tmp="$(mktemp -d)"
  log "caching the npm packages of deno.lock for the Windows deno"
  (cd "$REPO" && DENO_DIR="$tmp" "${host_deno[@]}" install --quiet --frozen) </dev/null >&2 ||
    die "deno install (npm packages for the Windows deno) failed"
  mkdir -p "$WIN_DENO_DIR/npm"
  cp -a "$tmp/npm/." "$WIN_DENO_DIR/npm/"
  rm -rf "$tmp"
  printf '%s' "$sum" >"$marker"
}

# Windows services get the environment services.exe builds from the registry, not the one of
# whoever ran `sc start` (Wine ignores the per-service Environment value too). Put the tier's
# DENO_DIR into the system environment, so a service running deno.exe uses the same module and npm
# cache as every other Wine process here (which get the same value from wine_env).
setup_service_env() {
  local want marker="$PREFIX/.hnsproxy-service-env"
  want="DENO_DIR=$(winpath "$WIN_DENO_DIR")"
  [[ -f "$marker" && "$(cat "$marker")" == "$want" ]] && return 0
  log "setting the services' DENO_DIR in the Wine registry"
  ensure_wineserver
  in_chroot_wine wine reg add 'HKLM\System\CurrentControlSet\Control\Session Manager\Environment' \
    /v DENO_DIR /t REG_SZ /d "${want#DENO_DIR=}" /f </dev/null >/dev/null 2>&1 ||
    die "reg add DENO_DIR failed"
  # services.exe read the environment when it started: restart Wine so the next boot sees it.
  cmd_stop
  printf '%s' "$want" >"$marker"
}

cmd_setup() {
  mkdir -p "$CACHE" "$STATE" "$WIN_DENO_DIR" "$RUNTIME_DIR"
  chmod 700 "$RUNTIME_DIR"
  apt_install_host gcc-mingw-w64-x86-64
  setup_chroot
  setup_deno
  setup_prefix
  setup_service_env
  setup_npm_cache
}

# Runs "$@" inside the chroot in a private mount namespace: the binds below vanish with its last process.
in_chroot() {
  [[ -d "$ROOTFS/usr" ]] || die "no chroot at $ROOTFS; run: $0 setup"
  mkdir -p "$ROOTFS$STATE" "$ROOTFS$REPO"
  timeout --kill-after=10 "$WINE_TIMEOUT" \
    unshare --mount --fork --kill-child --propagation private -- \
    bash -c '
      set -e
      root="$1" state="$2" repo="$3" cwd="$4"
      enter="cd \"\$0\" 2>/dev/null || cd /; exec \"\$@\""
      shift 4
      mount --rbind /dev "$root/dev"
      mount -t proc proc "$root/proc"
      mount -t sysfs sysfs "$root/sys" 2>/dev/null || true
      mount --bind "$state" "$root$state"
      mount --bind "$repo" "$root$repo"
      exec chroot "$root" /bin/sh -c "$enter" "$cwd" "$@"
    ' in_chroot "$ROOTFS" "$STATE" "$REPO" "$PWD" "$@"
}

# The environment every Wine call gets; HNSPROXY_* variables pass through to the Windows side.
wine_env() {
  local -a e=(
    "PATH=/usr/lib/wine:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    "HOME=/root"
    "LANG=C.UTF-8"
    "WINEPREFIX=$PREFIX"
    "WINEDEBUG=${WINEDEBUG:--all}"
    "WINEDLLOVERRIDES=mscoree,mshtml="
    "XDG_RUNTIME_DIR=$RUNTIME_DIR"
    "DENO_DIR=$(winpath "$WIN_DENO_DIR")"
    "NO_COLOR=${NO_COLOR:-1}"
  )
  local v
  while IFS= read -r v; do e+=("$v"); done < <(env | grep -E '^(HNSPROXY_[A-Z0-9_]*|CI)=' | grep -v '^HNSPROXY_WINE_' || true)
  printf '%s\0' "${e[@]}"
}

in_chroot_wine() {
  local -a envs
  mapfile -d '' envs < <(wine_env)
  in_chroot env -i "${envs[@]}" "$@"
}

# A persistent wineserver, detached from our stdio: without it Wine ends services about a second
# after the last ordinary process exits, and an inherited pipe would keep CI's output open.
# Wine's system processes (services.exe, rpcss.exe, ...) inherit the stdio of the process that
# started them, so they are booted here, detached, right after the server.
# The server resolves paths in the mount namespace it started in, where only the checkout that
# started it is bound: a server left running for another checkout is ended first.
ensure_wineserver() {
  local owner="$STATE/.wineserver-repo" me
  me="$REPO $(stat -c %d:%i "$REPO")" # the inode too: a checkout deleted and cloned again is another
  if [[ "$(cat "$owner" 2>/dev/null)" != "$me" ]]; then
    in_chroot_wine wineserver -k </dev/null >/dev/null 2>&1 || true
  fi
  printf '%s' "$me" >"$owner"
  if in_chroot_wine wineserver -p </dev/null >/dev/null 2>&1; then
    in_chroot_wine wine wineboot </dev/null >/dev/null 2>&1 || true
  fi
}

cmd_stop() {
  [[ -d "$ROOTFS/usr" && -d "$PREFIX" ]] || return 0
  in_chroot_wine wineserver -k </dev/null >/dev/null 2>&1 || true
}

cmd_exec() {
  [[ "${1:-}" == "--" ]] && shift
  [[ $# -gt 0 ]] || die "usage: $0 exec -- CMD [ARGS...]"
  [[ -f "$STATE/.prefix-ready" ]] || die "not set up; run: $0 setup"
  ensure_wineserver
  in_chroot_wine wine "$@"
}

cmd_deno() {
  [[ "${1:-}" == "--" ]] && shift
  cmd_exec -- "$DENO_EXE" "$@"
}

cmd_build_dlls() {
  mkdir -p "$BUILD_DIR"
  local src="$REPO/tests/windows/fixtures/wintest.c" out="$BUILD_DIR/wintest.dll"
  if [[ ! -f "$out" || "$src" -nt "$out" ]]; then
    x86_64-w64-mingw32-gcc -O2 -Wall -shared -o "$out" "$src" -lole32
  fi
  if [[ -f "$REPO/tests/hns-emulator/build.ts" ]]; then
    local -a host_deno=(deno)
    command -v deno >/dev/null || host_deno=(npx -y deno@2.9.6)
    (cd "$REPO" && "${host_deno[@]}" task -q build:emulator --windows) >&2 ||
      die "building the HNS emulator DLL failed"
  fi
}

# The last line of a run's output that is not blank, colours and carriage returns stripped.
last_output_line() {
  sed 's/\x1b\[[0-9;]*m//g; s/\r$//' "$1" | awk 'NF { line = $0 } END { print line }'
}

# Run the Windows deno's tests; its exit status decides, with one exception. Now and then the
# Windows deno process has not exited under Wine long after printing its summary (a hang in process
# teardown, not in a test). So when the last output line is a summary of 0 failed tests and nothing
# more is printed for TEARDOWN_GRACE seconds, every test has run and passed and only the exit hangs:
# Wine is stopped and the run passes, said in the log. Any other hang (no summary yet, a summary with
# failures, output after the summary) runs into the Wine timeout and fails, said in the log too.
run_windows_tests() {
  local out="$STATE/windows-tests.log"
  : >"$out"
  (
    set -o pipefail
    cd "$REPO" && cmd_deno -- test -A --no-check=remote "--config=$(winpath "$REPO/deno.json")" "$@" 2>&1 |
      tee "$out"
  ) &
  local pid=$! quiet=-1 size=-1 now last pass='^ok \| [0-9]+ passed \| 0 failed'
  while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    now="$(stat -c %s "$out")"
    if [[ "$now" != "$size" ]]; then # it printed more: not hanging (yet)
      size="$now"
      quiet=-1
    fi
    if ((quiet < 0)); then
      last="$(last_output_line "$out")"
      [[ "$last" =~ $pass ]] && quiet=0
    else
      quiet=$((quiet + 2))
      if ((quiet >= TEARDOWN_GRACE)); then
        log "the Windows deno's last output is the summary \"$last\" and it had" \
          "not exited ${TEARDOWN_GRACE} s later: every test passed and only the process hangs on exit;" \
          "stopping Wine, the run passes"
        cmd_stop
        wait "$pid" || true
        return 0
      fi
    fi
  done
  local rc=0
  wait "$pid" || rc=$?
  # timeout(1) exits 124, or 137 once it had to kill.
  if ((rc == 124 || rc == 137)); then
    log "the Windows deno did not finish within ${WINE_TIMEOUT} s and its last output is not a" \
      "passing summary (\"$(last_output_line "$out")\"): it hung before its tests ended or after a" \
      "failure; the run fails"
  fi
  return $rc
}

cmd_test() {
  local t0=$SECONDS
  cmd_setup
  local t1=$SECONDS
  cmd_build_dlls
  export HNSPROXY_WINTEST_DLL
  HNSPROXY_WINTEST_DLL="$(winpath "$BUILD_DIR/wintest.dll")"
  if [[ -f "$REPO/build/hnsemu.dll" ]]; then
    export HNSPROXY_HNS_LIBRARY
    HNSPROXY_HNS_LIBRARY="$(winpath "$REPO/build/hnsemu.dll")"
  fi
  local -a files=("$@") host_files=()
  if [[ ${#files[@]} -eq 0 ]]; then
    host_files=("$REPO"/tests/hns-emulator/*_wine_test.ts)
    local f
    for f in "$REPO"/tests/windows/*_test.ts "$REPO"/tests/hns/*_test.ts; do
      [[ -f "$f" ]] && files+=("$f")
    done
  fi
  local -a winfiles=()
  local f
  for f in "${files[@]}"; do winfiles+=("$(winpath "$f")"); done
  trap cmd_stop EXIT
  cmd_stop
  local rc=0
  run_windows_tests "${winfiles[@]}" || rc=$?
  # Tests that drive Windows programs under Wine from the host's (Linux) deno.
  if [[ ${#host_files[@]} -gt 0 && -f "${host_files[0]}" ]]; then
    local -a host_deno=(deno)
    command -v deno >/dev/null || host_deno=(npx -y deno@2.9.6)
    (cd "$REPO" && HNSPROXY_WINE_TIER=1 "${host_deno[@]}" test -A "${host_files[@]}") </dev/null || rc=$?
  fi
  log "setup $((t1 - t0))s, build + tests $((SECONDS - t1))s, exit $rc"
  return $rc
}

# Sourced (by tests of this script), it only defines its functions.
[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0

sub="${1:-}"
[[ $# -gt 0 ]] && shift
case "$sub" in
  setup) cmd_setup ;;
  exec) cmd_exec "$@" ;;
  deno) cmd_deno "$@" ;;
  winpath) winpath "${1:?path}" && echo ;;
  build-dlls) cmd_build_dlls ;;
  test) cmd_test "$@" ;;
  stop) cmd_stop ;;
  *)
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
