#!/usr/bin/env bash
# Print the path of a headless-capable Chromium, installing Debian's package when absent.
# Used by the HTML report test and the README screenshot.
set -euo pipefail
for candidate in "${CHROMIUM:-}" chromium chromium-browser google-chrome; do
    [[ -n "$candidate" ]] || continue
    if path="$(command -v "$candidate" 2>/dev/null)"; then
        echo "$path"
        exit 0
    fi
done
if [[ "$(id -u)" != 0 ]] && ! command -v sudo >/dev/null; then
    echo "ensure-chromium: Chromium is missing and I cannot install it (not root): apt-get install chromium" >&2
    exit 1
fi
SUDO=""; [[ "$(id -u)" == 0 ]] || SUDO=sudo
echo "ensure-chromium: installing Debian's chromium (once)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends chromium >&2
command -v chromium
