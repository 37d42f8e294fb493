#!/bin/sh
# The two commands of README.rst:
#   sh tools/dev.sh demo   run the main job on the built-in simulators (no hardware)
#   sh tools/dev.sh test   install what the tests need and run the full test suite
# and, for CI: sh tools/dev.sh docs        build the documentation with warnings as errors
#              sh tools/dev.sh typecheck   mypy --strict on the package and the plug-in example
# Both create a virtual environment in .venv (override with PYBURNERKIT_VENV) and install the
# package into it: "test" with every extra at once, "demo" family by family (an extra that
# fails to install costs only its family; the demo names the command that enables it). Run as root on Debian, they also install the system packages the drivers and
# their tests use (dbus-daemon, mosquitto, PostgreSQL, build headers); otherwise they say which
# ones are missing.
set -eu
cd "$(dirname "$0")/.."
VENV="${PYBURNERKIT_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

say() { printf 'dev.sh: %s\n' "$*" >&2; }

apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing system packages:$*"
        if [ -z "${APT_UPDATED:-}" ]; then
            apt-get update -qq >/dev/null
            APT_UPDATED=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    else
        say "missing system packages:$* (install them, e.g. sudo apt-get install$*)"
    fi
}

have_initdb() {
    command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

system_packages() {
    missing=""
    command -v dbus-daemon >/dev/null 2>&1 || missing="$missing dbus-daemon"
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$missing mosquitto"
    have_initdb || missing="$missing postgresql"
    command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
    command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
    if command -v pkg-config >/dev/null 2>&1; then
        pkg-config --exists dbus-1 || missing="$missing libdbus-1-dev"
        pkg-config --exists glib-2.0 || missing="$missing libglib2.0-dev"
    else
        missing="$missing libdbus-1-dev libglib2.0-dev"
    fi
    command -v cc >/dev/null 2>&1 || missing="$missing build-essential"
    "$PYTHON" - <<'PY' || missing="$missing python3-dev"
import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)
PY
    if [ -n "$missing" ]; then
        # Debian names: dbus-daemon ships in "dbus-daemon" (bookworm) or "dbus".
        apt_install $missing || apt_install $(echo "$missing" | sed 's/dbus-daemon/dbus/')
    fi
}

make_venv_dir() {
    if [ ! -x "$VENV/bin/python" ]; then
        if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
            rm -rf "$VENV"
            apt_install python3-venv
            "$PYTHON" -m venv "$VENV"
        fi
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip 2>/dev/null || true
}

make_venv() {
    make_venv_dir
    say "installing pyburnerkit[$1] into $VENV"
    log="$(mktemp)"
    if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$1]" >"$log" 2>&1; then
        grep -v "^WARNING: Location" "$log" >&2 || true
        rm -f "$log"
        say "installing pyburnerkit[$1] failed"
        exit 1
    fi
    rm -f "$log"
}

# The demo installs family by family: the base package first, then each family's extra on its
# own, so an extra that cannot be built here (dbus-python without the D-Bus headers) costs only
# its family; `pyburnerkit demo` runs every family whose extra is installed and names the pip
# command for each one it skips.
make_demo_venv() {
    make_venv_dir
    say "installing pyburnerkit into $VENV"
    log="$(mktemp)"
    if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e . >"$log" 2>&1
    then
        grep -v "^WARNING: Location" "$log" >&2 || true
        rm -f "$log"
        say "installing pyburnerkit failed"
        exit 1
    fi
    reqs="$(mktemp)"
    for extra in $("$VENV/bin/python" -c 'from pyburnerkit import families
print(" ".join(f.extra for f in families.families() if f.extra))'); do
        # the extra's own requirements, read from the installed metadata: installing them
        # directly skips rebuilding the editable package once per family
        "$VENV/bin/python" - "$extra" >"$reqs" <<'PY'
import re, sys
from importlib.metadata import requires
extra = sys.argv[1]
for req in requires("pyburnerkit") or []:
    spec, _, marker = req.partition(";")
    found = re.search(r'extra\s*==\s*"([^"]+)"', marker)
    if found and found.group(1) == extra:
        rest = re.sub(r'(\band\s+)?extra\s*==\s*"[^"]+"(\s+and\b)?', "", marker).strip()
        print(spec.strip() + ("; " + rest if rest else ""))
PY
        [ -s "$reqs" ] || continue
        if "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs" \
                >"$log" 2>&1; then
            say "installed pyburnerkit[$extra]"
        else
            # the lines that say why (a build's ERROR line), not pip's whole build log; the
            # demo skips the family and names the command that enables it
            if grep -qE "ERROR:|^error:" "$log"; then
                grep -E "ERROR:|^error:" "$log" | sed 's/^ *//' | head -n 5 >&2
            else
                tail -n 8 "$log" >&2
            fi
            say "installing pyburnerkit[$extra] failed; the demo skips that family"
        fi
    done
    rm -f "$log" "$reqs"
}

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
    demo)
        system_packages
        make_demo_venv
        exec "$VENV/bin/pyburnerkit" demo "$@"
        ;;
    test)
        system_packages
        make_venv "all,test,docs,typecheck"
        # 2 workers, one per core: the whole suite in about 6 minutes instead of 14. A third
        # worker saved a minute but starved the timing of the stress and broker tests (one of
        # them failed in about half the runs); -n 0 runs in one process
        exec "$VENV/bin/python" -m pytest -n "${PYBURNERKIT_TEST_WORKERS:-2}" "$@"
        ;;
    typecheck)
        system_packages
        make_venv "all,test,docs,typecheck"
        # --strict on everything shipped (a superset of the default checks), and on the worked
        # plug-in family, which is what third-party authors copy
        "$VENV/bin/python" -m mypy --strict pyburnerkit "$@"
        exec "$VENV/bin/python" -m mypy --strict examples/plugin_family/src/pyburnerkit_thermo "$@"
        ;;
    docs)
        # The API reference imports every client, so the "all" extras are needed. Warnings are
        # errors and every cross-reference must resolve (-W -n).
        system_packages
        make_venv "all,test,docs,typecheck"
        rm -rf build/docs
        exec "$VENV/bin/python" -m sphinx -b html -n -W --keep-going -q docs build/docs "$@"
        ;;
    *)
        echo "usage: sh tools/dev.sh demo|test|docs|typecheck [arguments]" >&2
        exit 2
        ;;
esac
