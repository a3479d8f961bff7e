#!/usr/bin/env bash
# Fails when PromQL text names a psnic_* metric that psnic-agent does not export.
#
# The exported names are read from the exporter's source, exporter/metrics.cpp, where every
# family is named once: `Build{Counter,Gauge,Histogram,Summary}().Name("psnic_...")` for the self
# metrics and `counter_family("psnic_...", ...)` or `gauge_family("psnic_...", ...)` for the
# container families. A histogram is
# exposed as NAME_bucket, NAME_sum and NAME_count, a summary as NAME, NAME_sum and NAME_count.
# A name here is an identifier starting with psnic_ (so recording rules such as
# container:psnic_network_receive_bytes:rate5m, and psnic-agent in prose, are not); `#` comments
# are skipped.
#
# usage: rules-metric-names.sh FILE...    (or - for standard input)
# Prints the names checked; exit 1 with one line per unknown name.
set -euo pipefail

source_file="$(dirname "$0")/../../exporter/metrics.cpp"
[ $# -gt 0 ] || { echo "usage: rules-metric-names.sh FILE... (- for standard input)" >&2; exit 2; }

# The source with all whitespace removed, so a builder chain split over lines reads as one.
flat=$(tr -d ' \t\n' <"$source_file")
exported=$(
  grep -oE 'Build(Counter|Gauge)\(\)\.Name\("psnic_[A-Za-z0-9_]+"\)' <<<"$flat" |
    sed -E 's/.*Name\("([^"]+)"\)/\1/' || true
  grep -oE 'BuildHistogram\(\)\.Name\("psnic_[A-Za-z0-9_]+"\)' <<<"$flat" |
    sed -E 's/.*Name\("([^"]+)"\)/\1_bucket\n\1_sum\n\1_count/' || true
  grep -oE 'BuildSummary\(\)\.Name\("psnic_[A-Za-z0-9_]+"\)' <<<"$flat" |
    sed -E 's/.*Name\("([^"]+)"\)/\1\n\1_sum\n\1_count/' || true
  grep -oE '(counter|gauge)_family\("psnic_[A-Za-z0-9_]+"' <<<"$flat" |
    sed -E 's/(counter|gauge)_family\("([^"]+)"/\2/' || true
)
if [ -z "$exported" ]; then
  echo "rules-metric-names: found no metric name in $source_file: its naming changed, update this script" >&2
  exit 1
fi

# Identifiers as PromQL reads them ([a-zA-Z_:][a-zA-Z0-9_:]*), comments removed first; label
# values in quotes are skipped so that a label value is never taken for a metric.
referenced=$(cat -- "$@" | sed -E 's/(^|[[:space:]])#.*$//' | sed -E 's/"([^"\\]|\\.)*"/""/g' |
  grep -oE '[A-Za-z_:][A-Za-z0-9_:]*' | grep -E '^psnic_' | sort -u || true)
if [ -z "$referenced" ]; then
  echo "rules-metric-names: $*: names no psnic_ metric at all" >&2
  exit 1
fi

status=0
while read -r name; do
  if grep -qxF "$name" <<<"$exported"; then
    echo "ok $name"
  else
    echo "rules-metric-names: $name is not a metric psnic-agent exports (exporter/metrics.cpp)" >&2
    status=1
  fi
done <<<"$referenced"
exit "$status"
