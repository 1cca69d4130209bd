# Sourced by kafka.sh and postgres.sh: their `logs [-f] [-n N]` command, one way for both.
# Uses the caller's die().

# tail_log FILE [-f|--follow] [-n N]: the last N (default 100) lines of FILE, or follow it.
tail_log() {
    local file="$1" follow=() n=100
    shift
    while (($#)); do
        case "$1" in
            -f|--follow) follow=(-F) ;;
            -n) n="$2"; shift ;;
            *) die "logs: unknown option $1" ;;
        esac
        shift
    done
    [[ -f "$file" ]] || die "no log yet at $file"
    tail -n "$n" "${follow[@]}" "$file"
}
