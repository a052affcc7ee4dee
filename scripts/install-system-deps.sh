#!/usr/bin/env bash
# Installs the Debian packages that Tendril's tests and CI need, and only those that are missing:
#   influxdb (influxd 1.x), mosquitto + mosquitto-clients, chromium (+ fonts-liberation for legible
#   screenshots), openssl, docker-compose (1.29, to validate docker-compose.yml; no engine), and the C
#   SDK's toolchain (device-sdk/c): make, clang 14 with libclang-rt-14-dev (libFuzzer, ASan, UBSan: a
#   Recommends of clang, so not pulled in by --no-install-recommends), libmbedtls-dev (wss), gcc-arm-none-eabi
#   + libnewlib-arm-none-eabi (Cortex-M footprint build), valgrind.
#
# Usage: bash scripts/install-system-deps.sh [package...]   (default: all of the above)
#
# Idempotent: when everything is present it only asks dpkg and exits (well under a second).
# Packages are installed with --no-install-recommends (docker-compose would pull in the Docker engine,
# chromium a printing stack and desktop daemons). Services are never left running or enabled: the tests
# start influxd and mosquitto themselves, on loopback, with their own config. While apt-get runs, a
# policy-rc.d that forbids service starts is in place (the previous one, if any, is restored after),
# and every init script or systemd unit that the install added is stopped and disabled afterwards.
# Needs root (or password-less sudo). Debian/Ubuntu only.
set -euo pipefail

DEFAULT_PACKAGES=(influxdb mosquitto mosquitto-clients chromium fonts-liberation openssl docker-compose
  make clang libclang-rt-14-dev libmbedtls-dev gcc-arm-none-eabi libnewlib-arm-none-eabi valgrind)
if [ $# -gt 0 ]; then PACKAGES=("$@"); else PACKAGES=("${DEFAULT_PACKAGES[@]}"); fi
POLICY=/usr/sbin/policy-rc.d

log() { echo "install-system-deps: $*"; }
die() { echo "install-system-deps: error: $*" >&2; exit 1; }

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script supports Debian-based systems only. Install these packages by other means: ${PACKAGES[*]}"

is_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

missing=()
for package in "${PACKAGES[@]}"; do
  is_installed "$package" || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
  log "all present (${PACKAGES[*]}); nothing to do"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    log "not root; re-running with sudo"
    exec sudo -n -E bash "$0" "$@"
  fi
  die "missing packages: ${missing[*]}. Installing them needs root: run \`sudo bash scripts/install-system-deps.sh\` (or apt-get install --no-install-recommends ${missing[*]})."
fi

# What the system runs as services before the install, so we can tell what the install added.
list_services() {
  { ls -1 /etc/init.d 2>/dev/null || true
    # Template units (name@.service) are not services of their own.
    ls -1 /lib/systemd/system /usr/lib/systemd/system 2>/dev/null | sed -n '/@\.service$/d; s/\.service$//p' || true
  } | sort -u
}
services_before=$(mktemp)
list_services >"$services_before"

# Forbid service starts while dpkg runs maintainer scripts (invoke-rc.d and deb-systemd-invoke honour it).
policy_backup=""
if [ -e "$POLICY" ]; then
  policy_backup=$(mktemp)
  cp -p "$POLICY" "$policy_backup"
fi
restore_policy() {
  if [ -n "$policy_backup" ]; then
    mv -f "$policy_backup" "$POLICY"
  else
    rm -f "$POLICY"
  fi
  rm -f "$services_before"
}
trap restore_policy EXIT
printf '#!/bin/sh\n# Written by Tendril scripts/install-system-deps.sh while it installs packages: start no services.\nexit 101\n' >"$POLICY"
chmod 0755 "$POLICY"

export DEBIAN_FRONTEND=noninteractive
log "missing: ${missing[*]}"
log "apt-get update"
apt-get update -qq -o Acquire::Retries=3
log "apt-get install --no-install-recommends ${missing[*]}"
apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 -o Acquire::Retries=3 -o DPkg::Lock::Timeout=120 "${missing[@]}"

# Stop and disable whatever services the install added (belt and braces: the policy above kept them from starting).
added_services=$(list_services | comm -13 "$services_before" -)
for service in $added_services; do
  if command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
      systemctl stop "$service" >/dev/null 2>&1 || true
    fi
    systemctl disable "$service" >/dev/null 2>&1 || true
  fi
  if [ -x "/etc/init.d/$service" ]; then
    if [ ! -d /run/systemd/system ]; then
      "/etc/init.d/$service" stop >/dev/null 2>&1 || true
    fi
    update-rc.d "$service" disable >/dev/null 2>&1 || true
  fi
  state="disabled"
  if command -v systemctl >/dev/null 2>&1 && [ "$(systemctl is-enabled "$service" 2>/dev/null || true)" = enabled ]; then
    state="STILL ENABLED (check by hand)"
  fi
  log "service $service added by the install: stopped, $state"
done

still_missing=()
for package in "${missing[@]}"; do
  is_installed "$package" || still_missing+=("$package")
done
[ ${#still_missing[@]} -eq 0 ] || die "apt-get finished but these are still not installed: ${still_missing[*]}"
log "installed: ${missing[*]}"
