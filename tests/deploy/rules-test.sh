#!/usr/bin/env bash
# Checks the Prometheus rules (CTest deploy.rules):
#   1. `promtool check rules` on the rules file;
#   2. every alert has a unit test case where it fires and one where it must not: an
#      alert_rule_test entry `alertname: NAME` followed by `exp_alerts:` with alerts, and one with
#      `exp_alerts: []` (read from the test file's layout, one key a line as written there), and
#      every recording rule is the subject of a promql_expr_test;
#   3. `promtool test rules` on the unit tests;
#   4. every psnic_* metric in both files is one the agent exports (rules-metric-names.sh).
#
# usage: rules-test.sh [RULES TESTS]
#   default deploy/prometheus/psnic-rules.yml and psnic-rules.test.yml; TESTS loads RULES by
#   the name it gives under rule_files, relative to itself.
set -euo pipefail

here=$(dirname "$0")
rules="${1:-$here/../../deploy/prometheus/psnic-rules.yml}"
tests="${2:-$here/../../deploy/prometheus/psnic-rules.test.yml}"

promtool check rules "$rules" || { echo "rules-test: $rules: promtool check rules failed" >&2; exit 1; }

alerts=$(sed -nE 's/^[[:space:]]*-[[:space:]]*alert:[[:space:]]*([A-Za-z0-9_]+)[[:space:]]*$/\1/p' "$rules")
[ -n "$alerts" ] || { echo "rules-test: $rules: no alert found" >&2; exit 1; }
# "NAME fires" / "NAME quiet" for each alert_rule_test entry.
cases=$(awk '
  /^[[:space:]]*alertname:/ { name = $2; next }
  name != "" && /^[[:space:]]*exp_alerts:/ {
    print name, ($2 == "[]" ? "quiet" : "fires"); name = ""
  }' "$tests")
status=0
for alert in $alerts; do
  for kind in fires quiet; do
    if ! grep -qxF "$alert $kind" <<<"$cases"; then
      what=$([ "$kind" = fires ] && echo "fires" || echo "must not fire")
      echo "rules-test: $tests: no case where $alert $what" >&2
      status=1
    fi
  done
done
records=$(sed -nE 's/^[[:space:]]*-[[:space:]]*record:[[:space:]]*([A-Za-z0-9_:]+)[[:space:]]*$/\1/p' "$rules")
for record in $records; do
  grep -qE "^[[:space:]]*- expr:[[:space:]]*${record}([^A-Za-z0-9_:]|$)" "$tests" ||
    { echo "rules-test: $tests: no promql_expr_test of $record" >&2; status=1; }
done
[ "$status" -eq 0 ] || exit 1

promtool test rules "$tests" || { echo "rules-test: $tests: promtool test rules failed" >&2; exit 1; }

bash "$here/rules-metric-names.sh" "$rules" "$tests" >/dev/null ||
  { echo "rules-test: a rule or a test names a metric psnic-agent does not export (above)" >&2; exit 1; }
echo "rules-test: $(wc -w <<<"$alerts") alerts fire and stay quiet, $(wc -w <<<"$records") recording rules are tested; metrics exported"
