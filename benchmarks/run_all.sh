#!/bin/sh
# Re-measure every figure of docs/performance.rst: each benchmark's table is written to
# docs/figures/<name>.txt, which the page includes as it is (nothing is typed by hand).
#   sh benchmarks/run_all.sh            every benchmark (about 10 minutes on 2 cores)
#   sh benchmarks/run_all.sh http_api   only the ones named
# Run it on an otherwise idle machine. Victron's velib_python column needs a checkout of
# victronenergy/velib_python at $VELIB (skipped otherwise) and the system python3 with gi and
# dbus for the peer processes.
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
OUT=docs/figures
mkdir -p "$OUT"
VELIB="${VELIB:-/tmp/velib_python}"

run() {
    name="$1"; shift
    case " ${ONLY:-} " in
        "  ") ;;
        *" $name "*) ;;
        *) return 0 ;;
    esac
    printf 'benchmarks/run_all.sh: %s\n' "$name" >&2
    {
        printf '$ python benchmarks/%s\n' "$*"
        printf '# %s, %s\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc) CPUs"
        "$PY" benchmarks/"$@"
    } > "$OUT/$name.txt.tmp" 2>&1
    mv "$OUT/$name.txt.tmp" "$OUT/$name.txt"
}

ONLY="$*"
run afterburner afterburner.py --rounds 1000 --warmup 100 --idle 5 --clients 20 --repeat 3
run afterburner_soak afterburner.py --soak 30
run arbin arbin.py --rounds 30
run mate3 mate3.py --rounds 30
if [ -d "$VELIB" ]; then
    run victron_monitor victron.py --monitor --updates 20000 --per-update 1,20 --velib "$VELIB" --repeat 5
else
    run victron_monitor victron.py --monitor --updates 20000 --per-update 1,20 --repeat 5
fi
run victron victron.py
run de1 de1.py
run de1_throughput de1.py --throughput-only --rates 600,1200,1500 --repeat 3 --window 2
run wirelog wirelog.py
run recorder recorder.py
run recorder_e2e recorder_e2e.py --seconds 10
run fleet fleet.py --seconds 60
run http_api http_api.py --seconds 5
run pyde1_mqtt pyde1_mqtt.py --events 400
