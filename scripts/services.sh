#!/usr/bin/env bash
# Local services for agentstream: Kafka (scripts/kafka.sh) and PostgreSQL
# (scripts/postgres.sh), without Docker.
#
#   scripts/services.sh up       start both (in parallel), or reuse what already answers
#   scripts/services.sh down     stop what this checkout started
#   scripts/services.sh status   show both; exit 0 only if both answer
#
# Addresses come from AGENTSTREAM_KAFKA_BOOTSTRAP and AGENTSTREAM_DATABASE_URL (see the
# two scripts for details and defaults).
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"

# Run "<script> <cmd>" for both services at once; each one's output stays together
# (buffered per service, printed when it finishes) so the two do not interleave.
both() {
    local cmd="$1" tmp rc=0 k_rc=0 p_rc=0 t0
    t0="$(date +%s.%N)"
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    "$SCRIPT_DIR/kafka.sh" "$cmd" >"$tmp/kafka" 2>&1 &
    local k_pid=$!
    "$SCRIPT_DIR/postgres.sh" "$cmd" >"$tmp/postgres" 2>&1 &
    local p_pid=$!
    wait "$p_pid" || p_rc=$?
    cat "$tmp/postgres"
    wait "$k_pid" || k_rc=$?
    cat "$tmp/kafka"
    if ((k_rc != 0 || p_rc != 0)); then
        rc=1
        local what="$cmd failed"
        [[ "$cmd" == status ]] && what="not answering"
        ((k_rc != 0)) && echo "services: kafka $what (exit $k_rc)" >&2
        ((p_rc != 0)) && echo "services: postgres $what (exit $p_rc)" >&2
    fi
    if [[ "$cmd" == start && $rc -eq 0 ]]; then
        awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "services: kafka and postgres up in %.1f s\n", b - a }'
    fi
    return "$rc"
}

case "${1:-}" in
    up) both start ;;
    down) both stop ;;
    status) both status ;;
    *) echo "usage: $0 {up|down|status}" >&2; exit 2 ;;
esac
