#!/usr/bin/env bash
# Prints every query of a Grafana dashboard as plain PromQL, the way Grafana sends it with every
# variable set to All, so that a test can run it against a real Prometheus or parse it offline:
#   - `=~"$var"` or `=~"${var}"`, for a variable of the dashboard, becomes `=~".*"` (the dashboard
#     gives every such variable allValue ".*"; dashboard-check.sh checks that), or the regex given
#     with --var NAME=REGEX (e.g. --var job=psnic, so that `up` and `scrape_duration_seconds`
#     cannot be answered by another job's targets);
#   - `$__rate_interval` and `$__interval` become the --interval (default 1m: at least four
#     samples at a 15 s scrape interval), `$__range` the --range (default 1h);
#   - anything else starting with `$` is an error: a variable used outside a =~ matcher, or one
#     this script does not know, would make the printed query differ from what Grafana runs.
# Panels inside collapsed rows and hidden targets are included. Whitespace runs become one space,
# one query per line.
#
# usage: dashboard-queries.sh [--json] [--variables] [--var NAME=REGEX]... [--interval D]
#                             [--range D] [DASHBOARD]
#   --json       one JSON object a line, {"panel": TITLE, "expr": QUERY}, instead of bare queries
#   --variables  also the series selector of each `label_values(SELECTOR, LABEL)` variable query,
#                as panel "variable NAME"
# DASHBOARD defaults to deploy/grafana/psnic-dashboard.json. Exit 1 with one line per problem.
set -euo pipefail

json=false
variables=false
interval=1m
range=1h
values='{}'
dashboard="$(dirname "$0")/../../deploy/grafana/psnic-dashboard.json"
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json=true ;;
    --variables) variables=true ;;
    --var)
      [[ "${2:-}" == ?*=* ]] || { echo "dashboard-queries: --var needs NAME=REGEX" >&2; exit 2; }
      values=$(jq -c --arg name "${2%%=*}" --arg value "${2#*=}" '. + {($name): $value}' <<<"$values")
      shift ;;
    --interval) interval="${2:?--interval needs a duration}"; shift ;;
    --range) range="${2:?--range needs a duration}"; shift ;;
    -*) echo "dashboard-queries: unknown option $1" >&2; exit 2 ;;
    *) dashboard="$1" ;;
  esac
  shift
done
[ -r "$dashboard" ] || { echo "dashboard-queries: $dashboard: cannot read it" >&2; exit 2; }

# One object per query: where it is, the expanded query, and what is left unexpanded.
expanded=$(jq -c --arg interval "$interval" --arg range "$range" --argjson values "$values" \
  --argjson variables "$variables" '
  [.templating.list[]? | select(.type != "datasource" and .type != "constant")] as $templating
  | ($templating | map(.name)) as $vars
  | (
      ([.panels[]? | ., (.panels[]?)] | .[] | select(.type != "row")) as $panel
      | $panel.targets[]? | select((.expr // "") != "") | {panel: $panel.title, expr}
    ),
    (
      if $variables then
        $templating[] | select(.type == "query")
        | {panel: "variable \(.name)",
           expr: ((.query | if type == "object" then .query else . end)
                  | capture("^\\s*label_values\\((?<selector>.*),\\s*[A-Za-z_][A-Za-z0-9_]*\\s*\\)\\s*$")
                  .selector)}
      else empty end
    )
  | .expr |= (reduce $vars[] as $v (.;
        ("=~\"" + ($values[$v] // ".*") + "\"") as $all
        | gsub("=~\"\\$" + $v + "\""; $all) | gsub("=~\"\\$\\{" + $v + "\\}\""; $all))
      | gsub("\\$__rate_interval\\b|\\$\\{__rate_interval\\}"; $interval)
      | gsub("\\$__interval\\b|\\$\\{__interval\\}"; $interval)
      | gsub("\\$__range\\b|\\$\\{__range\\}"; $range)
      | gsub("\\s+"; " "))
  | .left = [.expr | match("\\$\\{?[A-Za-z0-9_]*"; "g").string]
' "$dashboard") || { echo "dashboard-queries: $dashboard: not a dashboard jq can read" >&2; exit 1; }

problems=$(jq -r 'select(.left != []) |
  "dashboard-queries: \(.panel): \(.left | unique | join(", ")) left in \(.expr) (not a dashboard variable inside =~\"...\", nor $__rate_interval, $__interval or $__range)"' \
  <<<"$expanded")
if [ -n "$problems" ]; then
  echo "$problems" >&2
  exit 1
fi
if $json; then
  jq -c '{panel, expr}' <<<"$expanded"
else
  jq -r '.expr' <<<"$expanded"
fi
