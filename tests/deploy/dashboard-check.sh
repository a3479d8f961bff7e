#!/usr/bin/env bash
# Checks the Grafana dashboard offline (CTest deploy.dashboard):
#   1. it is JSON, with a Prometheus datasource variable that every panel and target uses;
#   2. every panel has at least one query, every query variable is label_values(...) with
#      All = ".*" (what dashboard-queries.sh substitutes), panel ids are unique;
#   3. every query, expanded by dashboard-queries.sh, is PromQL that promtool parses: promtool
#      has no offline query parser, but `promtool check rules` parses each recording rule's
#      expression, so the queries become the rules of a throwaway file;
#   4. every psnic_* metric they name is one the agent exports (rules-metric-names.sh).
# A real Prometheus fed by the agent runs the same queries in the compose end-to-end test.
#
# usage: dashboard-check.sh [DASHBOARD]   (default deploy/grafana/psnic-dashboard.json)
set -euo pipefail

here=$(dirname "$0")
dashboard="${1:-$here/../../deploy/grafana/psnic-dashboard.json}"
fail() { echo "dashboard-check: $dashboard: $*" >&2; exit 1; }

jq empty "$dashboard" 2>/dev/null || fail "not valid JSON ($(jq empty "$dashboard" 2>&1 | head -1))"

problems=$(jq -r '
  def ds_ok: (.datasource.type == "prometheus" and .datasource.uid == "${datasource}");
  ([.panels[]? | ., (.panels[]?)] | map(select(.type != "row"))) as $panels
  | (if (.title // "") == "" or (.uid // "") == "" then "no title or uid" else empty end),
    (if (.schemaVersion // 0) < 36 then "schemaVersion \(.schemaVersion) is older than 36" else empty end),
    (if [.templating.list[]? | select(.type == "datasource" and .name == "datasource"
                                      and .query == "prometheus")] == []
     then "no datasource variable named datasource of type prometheus" else empty end),
    (if $panels == [] then "no panels" else empty end),
    ([.panels[]? | ., (.panels[]?)] | map(.id) | group_by(.) | map(select(length > 1)[0])
     | .[] | "panel id \(.) is used twice"),
    ($panels[] | . as $p | ("panel \"\(.title // "")\" (id \(.id))") as $name
     | (if (.title // "") == "" then "\($name) has no title" else empty end),
       (if ds_ok | not then "\($name) does not use the ${datasource} Prometheus datasource" else empty end),
       (if (.targets // []) == [] then "\($name) has no query" else empty end),
       (.targets[]? | (if (.expr // "" | test("\\S")) | not
                       then "\($name) target \(.refId // "?") has no expr" else empty end),
                      (if has("datasource") and (ds_ok | not)
                       then "\($name) target \(.refId // "?") does not use ${datasource}" else empty end)),
       ([.targets[]?.refId] | group_by(.) | map(select(length > 1)[0]) | .[]
        | "\($name) has refId \(.) twice")),
    (.templating.list[]? | select(.type == "query") | ("variable \(.name)") as $name
     | (if (.query | if type == "object" then .query else . end | tostring
            | test("^\\s*label_values\\(.*,\\s*[A-Za-z_][A-Za-z0-9_]*\\s*\\)\\s*$")) | not
        then "\($name) is not label_values(SELECTOR, LABEL)" else empty end),
       (if .includeAll != true or .allValue != ".*"
        then "\($name) needs includeAll and allValue \".*\" (All selects every series, empty labels too)"
        else empty end),
       (if ds_ok | not then "\($name) does not use the ${datasource} Prometheus datasource" else empty end))
' "$dashboard")
[ -z "$problems" ] || fail "$(echo "$problems" | paste -sd ';' | sed 's/;/; /g')"

queries=$(bash "$here/dashboard-queries.sh" --json --variables "$dashboard") || exit 1
count=$(wc -l <<<"$queries")

work=$(mktemp -d /tmp/psnictest-dashboard.XXXXXX)
trap 'rm -rf "$work"' EXIT
# JSON strings are YAML double-quoted scalars, so the queries go in as they are.
jq -rs '"groups:\n  - name: psnictest-dashboard-queries\n    rules:",
  (to_entries[] | "      - record: psnictest:query_\(.key)\n        expr: \(.value.expr | tojson)")' \
  <<<"$queries" >"$work/queries.yml"
if ! promtool check rules "$work/queries.yml" >"$work/promtool.out" 2>&1; then
  # promtool names the rule (psnictest:query_N): say which panel that is.
  jq -r --slurp 'to_entries[] | "  psnictest:query_\(.key) is \(.value.panel): \(.value.expr)"' \
    <<<"$queries" >&2
  sed 's/^/  promtool: /' "$work/promtool.out" >&2
  fail "promtool cannot parse a query (above)"
fi

jq -r '.expr' <<<"$queries" | bash "$here/rules-metric-names.sh" - >/dev/null ||
  fail "a query names a metric psnic-agent does not export (above)"

echo "dashboard-check: $dashboard: $count queries parse and name only exported metrics"
