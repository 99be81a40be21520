#!/usr/bin/env bash
# Writes deploy/kubernetes/prometheusrule.yaml from deploy/prometheus/rules.yml: the rule
# file's `groups:` (comments included) become the spec of a prometheus-operator PrometheusRule.
#
#   bash scripts/gen-prometheusrule.sh            # rewrite deploy/kubernetes/prometheusrule.yaml
#   bash scripts/gen-prometheusrule.sh OUT_FILE   # write elsewhere ("-" for stdout)
#
# Run it after every edit of rules.yml; tests/kubernetes_manifests.rs fails while the two differ.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rules="${root}/deploy/prometheus/rules.yml"
out="${1:-${root}/deploy/kubernetes/prometheusrule.yaml}"

generate() {
    cat <<'HEADER'
# Generated, do not edit: scripts/gen-prometheusrule.sh writes this file from
# deploy/prometheus/rules.yml (edit that, then rerun the script). The rule file's comments
# explain each rule and threshold.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: redis-persistence-exporter
  labels:
    app.kubernetes.io/name: redis-persistence-exporter
    app.kubernetes.io/component: exporter
spec:
HEADER
    # Everything from the top-level `groups:` key on, indented two spaces under `spec:`.
    # Shifting every line equally keeps block scalars (`|`, `>-`) intact. A Prometheus rule
    # file has no other top-level key; anything else (or a second document) is refused
    # rather than silently dropped.
    awk -v file="${rules}" '
        /^groups:[ \t]*(#.*)?$/ { if (seen) { bad = "a second groups: key"; exit 1 } seen = 1 }
        /^---/ || /^\.\.\./ { bad = "more than one YAML document"; exit 1 }
        /^[^ \t#]/ && !/^groups:/ { bad = "top-level key other than groups: " $0; exit 1 }
        seen { if ($0 ~ /^[ \t]*$/) print ""; else print "  " $0 }
        END {
            if (bad != "") { print file ": " bad > "/dev/stderr"; exit 1 }
            if (!seen) { print file ": no top-level groups: key" > "/dev/stderr"; exit 1 }
        }
    ' "${rules}"
}

if [[ "${out}" == "-" ]]; then
    generate
    exit 0
fi

# Write beside the target and rename, so a failure never leaves a half-written file.
tmp="$(mktemp "${out}.XXXXXX")"
trap 'rm -f "${tmp}"' EXIT
generate >"${tmp}"
chmod 0644 "${tmp}"
mv "${tmp}" "${out}"
trap - EXIT
