#include "exporter/exposition.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>

namespace psnic {
namespace {

void append_number(std::string& out, uint64_t value) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
}

void append_number(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value < 0 ? "-Inf" : "+Inf";
  } else if (value == std::trunc(value) && std::fabs(value) < 0x1p63) {
    // Counters are whole numbers: "1234", not "1234.0" or "1.234e+03".
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, static_cast<int64_t>(value));
    out.append(digits, end);
  } else {
    char digits[32];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
    out.append(digits, end);
  }
}

// Appends `text` with backslashes (and, with `quotes`, double quotes) escaped by a backslash and
// newlines written as \n.
void append_escaped(std::string& out, std::string_view text, bool quotes) {
  size_t plain = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '\\' && c != '\n' && !(quotes && c == '"')) continue;
    out.append(text.substr(plain, i - plain));
    out += '\\';
    out += c == '\n' ? 'n' : c;
    plain = i + 1;
  }
  out.append(text.substr(plain));
}

// `name{labels,extra="value"} ` (no braces without labels).
void append_head(std::string& out, const prometheus::MetricFamily& family,
                 const prometheus::ClientMetric& metric, std::string_view suffix = {},
                 std::string_view extra_name = {}, const std::string* extra_value = nullptr) {
  out += family.name;
  out += suffix;
  if (!metric.label.empty() || extra_value != nullptr) {
    char separator = '{';
    for (const prometheus::ClientMetric::Label& label : metric.label) {
      out += separator;
      out += label.name;
      out += "=\"";
      append_escaped(out, label.value, /*quotes=*/true);
      out += '"';
      separator = ',';
    }
    if (extra_value != nullptr) {
      out += separator;
      out += extra_name;
      out += "=\"";
      out += *extra_value;
      out += '"';
    }
    out += '}';
  }
  out += ' ';
}

void append_tail(std::string& out, const prometheus::ClientMetric& metric) {
  if (metric.timestamp_ms != 0) {
    out += ' ';
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, metric.timestamp_ms);
    out.append(digits, end);
  }
  out += '\n';
}

template <typename Value>
void append_sample(std::string& out, const prometheus::MetricFamily& family,
                   const prometheus::ClientMetric& metric, Value value,
                   std::string_view suffix = {}, std::string_view extra_name = {},
                   const std::string* extra_value = nullptr) {
  append_head(out, family, metric, suffix, extra_name, extra_value);
  append_number(out, value);
  append_tail(out, metric);
}

std::string number_text(double value) {
  std::string text;
  append_number(text, value);
  return text;
}

void append_histogram(std::string& out, const prometheus::MetricFamily& family,
                      const prometheus::ClientMetric& metric) {
  const prometheus::ClientMetric::Histogram& histogram = metric.histogram;
  append_sample(out, family, metric, histogram.sample_count, "_count");
  append_sample(out, family, metric, histogram.sample_sum, "_sum");
  double last = -std::numeric_limits<double>::infinity();
  for (const prometheus::ClientMetric::Bucket& bucket : histogram.bucket) {
    const std::string le = number_text(bucket.upper_bound);
    append_sample(out, family, metric, bucket.cumulative_count, "_bucket", "le", &le);
    last = bucket.upper_bound;
  }
  if (last != std::numeric_limits<double>::infinity()) {
    const std::string le = "+Inf";
    append_sample(out, family, metric, histogram.sample_count, "_bucket", "le", &le);
  }
}

void append_summary(std::string& out, const prometheus::MetricFamily& family,
                    const prometheus::ClientMetric& metric) {
  const prometheus::ClientMetric::Summary& summary = metric.summary;
  append_sample(out, family, metric, summary.sample_count, "_count");
  append_sample(out, family, metric, summary.sample_sum, "_sum");
  for (const prometheus::ClientMetric::Quantile& quantile : summary.quantile) {
    const std::string q = number_text(quantile.quantile);
    append_sample(out, family, metric, quantile.value, "", "quantile", &q);
  }
}

std::string_view type_name(prometheus::MetricType type) {
  switch (type) {
    case prometheus::MetricType::Counter:
      return "counter";
    case prometheus::MetricType::Gauge:
      return "gauge";
    case prometheus::MetricType::Summary:
      return "summary";
    case prometheus::MetricType::Histogram:
      return "histogram";
    case prometheus::MetricType::Untyped:
      break;
  }
  return "untyped";
}

}  // namespace

std::string write_exposition(const std::vector<prometheus::MetricFamily>& families) {
  // One allocation for most scrapes: a sample line is ~280 bytes with psnic's six labels.
  size_t samples = 0;
  for (const prometheus::MetricFamily& family : families) samples += family.metric.size();
  std::string out;
  out.reserve(samples * 300 + families.size() * 200);
  for (const prometheus::MetricFamily& family : families) {
    if (!family.help.empty()) {
      out += "# HELP ";
      out += family.name;
      out += ' ';
      append_escaped(out, family.help, /*quotes=*/false);
      out += '\n';
    }
    out += "# TYPE ";
    out += family.name;
    out += ' ';
    out += type_name(family.type);
    out += '\n';
    for (const prometheus::ClientMetric& metric : family.metric) {
      switch (family.type) {
        case prometheus::MetricType::Counter:
          append_sample(out, family, metric, metric.counter.value);
          break;
        case prometheus::MetricType::Gauge:
          append_sample(out, family, metric, metric.gauge.value);
          break;
        case prometheus::MetricType::Untyped:
          append_sample(out, family, metric, metric.untyped.value);
          break;
        case prometheus::MetricType::Histogram:
          append_histogram(out, family, metric);
          break;
        case prometheus::MetricType::Summary:
          append_summary(out, family, metric);
          break;
      }
    }
  }
  return out;
}

}  // namespace psnic
