#!/bin/sh
# Install the Debian packages the test suite needs (e.g. `prometheus` for promtool and the
# Prometheus server, `chromium` for browser tests). Idempotent and quiet: packages already
# installed are left alone and `apt-get update` runs only when something must be installed.
# Without root (or without apt-get) it only says what is missing; the tests that need a
# missing package then skip with a reason naming this script.
#
#   scripts/install-test-deps.sh prometheus [chromium ...]
set -eu

missing=""
for pkg in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
        "install ok installed") ;;
        *) missing="$missing $pkg" ;;
    esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: missing Debian packages:$missing (run this script as root to install them; tests that need them will skip)" >&2
    exit 0
fi

echo "install-test-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# shellcheck disable=SC2086 # word splitting of the package list is intended
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-test-deps: installing$missing failed" >&2
    exit 1
fi
