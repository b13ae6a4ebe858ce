# Sourced by the benchmark scripts that listen on fixed ports:
#   ports_free NAME PORT...
# exits the script (status 1, a message naming the port) when something
# already accepts connections on one of them. A server left there by an
# earlier run killed before its cleanup would otherwise answer instead of
# this run's, and be measured.
ports_free() {
    local name=$1 p
    shift
    for p in "$@"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$name: port $p is already in use; stop what listens there first" >&2
            exit 1
        fi
    done
}
