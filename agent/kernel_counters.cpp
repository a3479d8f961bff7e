#include "agent/kernel_counters.h"

namespace psnic {

KernelCounters::KernelCounters(const TrafficProgram& program, AttachMode mode, const PinDir* pins)
    : program_(program), mode_(mode), pins_(pins), map_(program.map_fd()) {
  if (pins_ != nullptr) label_store_.emplace(LabelStore::open(*pins_));
}

KernelCounters::~KernelCounters() { stop_all(); }

void KernelCounters::stop_all() {
  if (pins_ != nullptr)
    for (auto& [ifindex, counted] : counting_) counted.release();
  counting_.clear();  // an ephemeral agent's stop counting here
}

std::vector<std::optional<Error>> KernelCounters::attach(
    const std::vector<AttachRequest>& requests) {
  std::vector<std::optional<Error>> errors;
  errors.reserve(requests.size());
  for (AttachResult& result : attach_all(program_, requests, mode_, pins_)) {
    if (result.counted) {
      const uint32_t ifindex = result.counted->ifindex();
      counting_.insert_or_assign(ifindex, std::move(*result.counted));
    }
    errors.push_back(std::move(result.error));
  }
  return errors;
}

void KernelCounters::detach(uint32_t ifindex) {
  counting_.erase(ifindex);
  if (label_store_) label_store_->erase(ifindex);
}

bool KernelCounters::intact(uint32_t ifindex) const {
  auto it = counting_.find(ifindex);
  return it != counting_.end() && it->second.intact();
}

void KernelCounters::reattach(uint32_t ifindex) {
  auto it = counting_.find(ifindex);
  if (it != counting_.end()) it->second.reattach(pins_);
}

bool KernelCounters::adopt(const AttachRequest& request) {
  if (pins_ == nullptr) return false;
  std::optional<CountedInterface> adopted =
      CountedInterface::adopt(program_, request.ifindex, request.name, mode_, *pins_);
  if (!adopted) return false;
  counting_.insert_or_assign(request.ifindex, std::move(*adopted));
  return true;
}

void KernelCounters::remove_remnants(uint32_t ifindex) {
  if (pins_ != nullptr) psnic::remove_remnants(program_, ifindex, *pins_);
}

std::vector<uint32_t> KernelCounters::pinned() const {
  return pins_ ? pins_->pinned_ifindexes() : std::vector<uint32_t>{};
}

void KernelCounters::unpin(uint32_t ifindex) {
  if (pins_ == nullptr) return;
  pins_->unpin_link(ifindex, true);
  pins_->unpin_link(ifindex, false);
}

void KernelCounters::forget(uint32_t ifindex) {
  program_.untrack(ifindex);
  if (label_store_) label_store_->erase(ifindex);
}

std::optional<InterfaceLabels> KernelCounters::stored_labels(uint32_t ifindex) const {
  return label_store_ ? label_store_->get(ifindex) : std::nullopt;
}

void KernelCounters::store_labels(uint32_t ifindex, const InterfaceLabels& labels) {
  if (label_store_) label_store_->put(ifindex, labels);
}

}  // namespace psnic
