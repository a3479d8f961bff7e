#include "agent/label_store.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "base/error.h"
#include "bpf/traffic.h"

namespace psnic {
namespace {

// Six labels, each a 16-bit length and up to kMaxLabel bytes, one after the other.
constexpr size_t kFields = 6;
constexpr uint32_t kValueSize = kFields * (2 + LabelStore::kMaxLabel);
using Value = std::array<unsigned char, kValueSize>;

std::array<std::string*, kFields> fields(InterfaceLabels& l) {
  return {&l.container_id,   &l.container_name, &l.pod,
          &l.namespace_name, &l.interface,      &l.host_interface};
}

Value encode(InterfaceLabels labels) {
  Value value{};
  size_t at = 0;
  for (const std::string* field : fields(labels)) {
    const size_t length = std::min(field->size(), LabelStore::kMaxLabel);
    value[at] = static_cast<unsigned char>(length >> 8);
    value[at + 1] = static_cast<unsigned char>(length & 0xff);
    std::memcpy(value.data() + at + 2, field->data(), length);
    at += 2 + length;
  }
  return value;
}

std::optional<InterfaceLabels> decode(const Value& value) {
  InterfaceLabels labels;
  size_t at = 0;
  for (std::string* field : fields(labels)) {
    const size_t length = static_cast<size_t>(value[at]) << 8 | value[at + 1];
    if (length > LabelStore::kMaxLabel) return std::nullopt;
    field->assign(reinterpret_cast<const char*>(value.data() + at + 2), length);
    at += 2 + length;
  }
  return labels;
}

bool has_layout(int map_fd) {
  bpf_map_info info{};
  uint32_t length = sizeof info;
  return bpf_obj_get_info_by_fd(map_fd, &info, &length) == 0 && info.type == BPF_MAP_TYPE_HASH &&
         info.key_size == sizeof(uint32_t) && info.value_size == kValueSize &&
         info.max_entries == PSNIC_MAX_INTERFACES;
}

}  // namespace

LabelStore LabelStore::open(const PinDir& pins) {
  const std::string path = pins.labels_path();
  Fd map(bpf_obj_get(path.c_str()));
  if (map.valid() && has_layout(map.get())) return LabelStore(std::move(map));
  if (map.valid()) unlink(path.c_str());
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
  map = Fd(bpf_map_create(BPF_MAP_TYPE_HASH, "psnic_labels", sizeof(uint32_t), kValueSize,
                          PSNIC_MAX_INTERFACES, &opts));
  if (!map.valid()) throw system_error(path, errno);
  if (bpf_obj_pin(map.get(), path.c_str()) < 0) throw system_error(path, errno);
  return LabelStore(std::move(map));
}

void LabelStore::put(uint32_t ifindex, const InterfaceLabels& labels) const {
  const Value value = encode(labels);
  bpf_map_update_elem(map_.get(), &ifindex, value.data(), BPF_ANY);
}

std::optional<InterfaceLabels> LabelStore::get(uint32_t ifindex) const {
  Value value{};
  if (bpf_map_lookup_elem(map_.get(), &ifindex, value.data()) != 0) return std::nullopt;
  return decode(value);
}

void LabelStore::erase(uint32_t ifindex) const { bpf_map_delete_elem(map_.get(), &ifindex); }

}  // namespace psnic
