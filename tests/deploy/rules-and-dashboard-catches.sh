#!/usr/bin/env bash
# The checks of the rules and the dashboard can fail (CTest deploy.checks-catch-mistakes): each
# case copies the shipped files, makes one mistake in the copy, and expects rules-test.sh or
# dashboard-check.sh to fail with the line that names it. The unchanged copies must pass.
# shellcheck disable=SC2016  # the perl and jq programs are single-quoted on purpose
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root="$here/../.."
work=$(mktemp -d /tmp/psnictest-deploy-checks.XXXXXX)
trap 'rm -rf "$work"' EXIT

failures=0
# expect DESCRIPTION STATUS PATTERN COMMAND...: COMMAND exits with STATUS (0, or "fail" for any
# other) and, when failing, prints PATTERN (grep -E) on stderr.
expect() {
  local what="$1" want="$2" pattern="$3"
  shift 3
  local status=0
  "$@" >"$work/out" 2>"$work/err" || status=$?
  if [ "$want" = 0 ] && [ "$status" -ne 0 ]; then
    echo "FAIL $what: failed (status $status):" >&2
    cat "$work/err" >&2
    failures=$((failures + 1))
  elif [ "$want" = fail ] && { [ "$status" -eq 0 ] || ! grep -qE -- "$pattern" "$work/err"; }; then
    echo "FAIL $what: status $status, stderr without /$pattern/:" >&2
    cat "$work/err" >&2
    failures=$((failures + 1))
  else
    echo "ok   $what"
  fi
}

# ---- rules ----------------------------------------------------------------------------------
# rules_case NAME PERL_ON_RULES PERL_ON_TESTS: copies with those (perl -0pe) edits applied.
rules_case() {
  mkdir -p "$work/$1"
  perl -0pe "$2" "$root/deploy/prometheus/psnic-rules.yml" >"$work/$1/psnic-rules.yml"
  perl -0pe "$3" "$root/deploy/prometheus/psnic-rules.test.yml" >"$work/$1/psnic-rules.test.yml"
  echo "$work/$1/psnic-rules.yml" "$work/$1/psnic-rules.test.yml"
}
# shellcheck disable=SC2046  # the two paths rules_case prints are two arguments
{
  expect "rules: unchanged copies pass" 0 "" \
    bash "$here/rules-test.sh" $(rules_case unchanged '' '')
  expect "rules: a metric name the exporter lacks, in rules and tests alike" fail \
    "psnic_pending_owner is not a metric psnic-agent exports" \
    bash "$here/rules-test.sh" $(rules_case typo 's/psnic_pending_owners/psnic_pending_owner/g' \
      's/psnic_pending_owners/psnic_pending_owner/g')
  expect "rules: an expression promtool cannot parse" fail "promtool check rules failed" \
    bash "$here/rules-test.sh" $(rules_case syntax 's/\(up\{job="psnic"\}\)/(up{job="psnic"}/' '')
  expect "rules: a threshold the tests do not expect" fail "promtool test rules failed" \
    bash "$here/rules-test.sh" $(rules_case threshold 's/> 0\.25/> 0.5/' '')
  expect "rules: an alert without a case where it stays quiet" fail \
    "no case where PsnicScrapeSlow must not fire" \
    bash "$here/rules-test.sh" $(rules_case quiet '' \
      's/alertname: PsnicScrapeSlow\n(\s*)exp_alerts: \[\]/alertname: PsnicOwnersUnnamed\n$1exp_alerts: []/')
  expect "rules: an alert without a case where it fires" fail \
    "no case where PsnicAgentAbsent fires" \
    bash "$here/rules-test.sh" $(rules_case fires '' \
      's/alertname: PsnicAgentAbsent\n(\s*)exp_alerts:\n/alertname: PsnicAgentDown\n$1exp_alerts:\n/')
  expect "rules: a recording rule without a test" fail \
    "no promql_expr_test of instance:psnic_pending_owners:max" \
    bash "$here/rules-test.sh" $(rules_case record \
      's/(  - name: psnic-alerts)/      - record: instance:psnic_pending_owners:max\n        expr: max without () (psnic_pending_owners{job="psnic"})\n\n$1/' '')
}

# ---- dashboard ------------------------------------------------------------------------------
# dashboard_case NAME JQ: a copy of the dashboard transformed by JQ.
dashboard_case() {
  jq "$2" "$root/deploy/grafana/psnic-dashboard.json" >"$work/$1.json"
  echo "$work/$1.json"
}
# panel ID EDIT: jq that applies EDIT to the panel with that id.
panel() { echo ".panels |= map(if .id == $1 then ($2) else . end)"; }

expect "dashboard: unchanged copy passes" 0 "" \
  bash "$here/dashboard-check.sh" "$(dashboard_case unchanged .)"
expect "dashboard: a metric name the exporter lacks" fail \
  "psnic_pending_owner is not a metric psnic-agent exports" \
  bash "$here/dashboard-check.sh" "$(dashboard_case typo \
    "$(panel 13 '.targets[0].expr |= sub("psnic_pending_owners"; "psnic_pending_owner")')")"
expect "dashboard: a query promtool cannot parse" fail "promtool cannot parse a query" \
  bash "$here/dashboard-check.sh" "$(dashboard_case syntax \
    "$(panel 12 '.targets[0].expr |= sub("\\)$"; "")')")"
expect "dashboard: a variable outside a =~ matcher" fail "Errors by operation: \\\$job left in" \
  bash "$here/dashboard-check.sh" "$(dashboard_case equality \
    "$(panel 12 '.targets[0].expr |= sub("job=~"; "job=")')")"
expect "dashboard: a variable the dashboard does not define" fail "Agents up: \\\$node left in" \
  bash "$here/dashboard-check.sh" "$(dashboard_case unknown \
    "$(panel 8 '.targets[0].expr |= sub("\\$instance"; "$node")')")"
expect "dashboard: a panel without a query" fail "panel \"Reconcile duration\" \\(id 14\\) has no query" \
  bash "$here/dashboard-check.sh" "$(dashboard_case empty "$(panel 14 '.targets = []')")"
expect "dashboard: a variable whose All is not .*" fail "variable namespace needs includeAll" \
  bash "$here/dashboard-check.sh" "$(dashboard_case allvalue \
    '.templating.list |= map(if .name == "namespace" then del(.allValue) else . end)')"
head -c 300 "$root/deploy/grafana/psnic-dashboard.json" >"$work/truncated.json"
expect "dashboard: not JSON" fail "not valid JSON" \
  bash "$here/dashboard-check.sh" "$work/truncated.json"

if [ "$failures" -gt 0 ]; then
  echo "rules-and-dashboard-catches: $failures case(s) not caught as expected" >&2
  exit 1
fi
