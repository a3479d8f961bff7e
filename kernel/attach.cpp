#include "kernel/attach.h"

#include <cerrno>
#include <utility>

#include "base/error.h"
#include "kernel/peer.h"

namespace psnic {

const char* attach_mode_name(AttachMode mode) { return mode == AttachMode::tcx ? "tcx" : "tc"; }

std::optional<AttachMode> parse_attach_mode(std::string_view text) {
  if (text == "tcx") return AttachMode::tcx;
  if (text == "tc") return AttachMode::tc;
  if (text == "auto") return std::nullopt;
  throw Error("attach mode " + std::string(text), EINVAL, "not one of auto, tcx, tc");
}

AttachMode probe_attach_mode(const TrafficProgram& program) {
  return TcxLinks::supported(program) ? AttachMode::tcx : AttachMode::tc;
}

Attachment Attachment::attach(const TrafficProgram& program, uint32_t ifindex,
                              const std::string& name, AttachMode mode, const PinDir* pins) {
  if (mode == AttachMode::tcx)
    return Attachment(ifindex, name, TcxLinks::attach(program, ifindex, name, pins));
  return Attachment(ifindex, name, TcFilters::attach(program, ifindex, name, pins != nullptr));
}

std::optional<Attachment> Attachment::adopt(const TrafficProgram& program, uint32_t ifindex,
                                            const std::string& name, AttachMode mode,
                                            const PinDir& pins) {
  if (mode == AttachMode::tcx) {
    std::optional<TcxLinks> links = TcxLinks::adopt(program, ifindex, name, pins);
    if (!links) return std::nullopt;
    return Attachment(ifindex, name, std::move(*links));
  }
  std::optional<TcFilters> filters = TcFilters::adopt(program, ifindex, name);
  if (!filters) return std::nullopt;
  return Attachment(ifindex, name, std::move(*filters));
}

bool Attachment::intact() const {
  return std::visit([](const auto& hooks) { return hooks.intact(); }, hooks_);
}

void Attachment::detach() {
  std::visit([](auto& hooks) { hooks.detach(); }, hooks_);
}

void Attachment::release() {
  std::visit([](auto& hooks) { hooks.release(); }, hooks_);
}

void remove_remnants(const TrafficProgram& program, uint32_t ifindex, const PinDir& pins,
                     PeerEntries* peers) {
  pins.unpin_link(ifindex, true);
  pins.unpin_link(ifindex, false);
  if (peers != nullptr)
    PeerLink::remove_remnants(program, ifindex, pins, *peers);
  else
    PeerLink::remove_remnants(program, ifindex, pins);
  remove_tc_filters_of_map(ifindex, program.ids().map);
  remove_tc_filters_of_map(ifindex, program.ids().idle_map);
}

CountedInterface CountedInterface::attach(const TrafficProgram& program, uint32_t ifindex,
                                          const std::string& name, AttachMode mode,
                                          const PinDir* pins) {
  program.track(ifindex);
  try {
    return CountedInterface(program, Attachment::attach(program, ifindex, name, mode, pins));
  } catch (const Error&) {
    program.untrack(ifindex);
    throw;
  }
}

std::optional<CountedInterface> CountedInterface::adopt(const TrafficProgram& program,
                                                        uint32_t ifindex, const std::string& name,
                                                        AttachMode mode, const PinDir& pins) {
  std::optional<Attachment> adopted = Attachment::adopt(program, ifindex, name, mode, pins);
  if (!adopted) return std::nullopt;
  program.track(ifindex);  // present already, unless someone deleted it
  return CountedInterface(program, std::move(*adopted));
}

CountedInterface& CountedInterface::operator=(CountedInterface&& other) noexcept {
  if (this != &other) {
    stop();
    program_ = std::exchange(other.program_, nullptr);
    attachment_ = std::move(other.attachment_);
  }
  return *this;
}

void CountedInterface::reattach(const PinDir* pins) {
  const uint32_t ifindex = attachment_.ifindex();
  const std::string name = attachment_.name();
  const AttachMode mode = attachment_.mode();
  attachment_.detach();
  attachment_ = Attachment::attach(*program_, ifindex, name, mode, pins);
}

void CountedInterface::stop() {
  if (program_ == nullptr) return;
  attachment_.detach();
  std::exchange(program_, nullptr)->untrack(attachment_.ifindex());
}

void CountedInterface::release() {
  attachment_.release();
  program_ = nullptr;
}

std::vector<AttachResult> attach_all(const TrafficProgram& program,
                                     const std::vector<AttachRequest>& requests, AttachMode mode,
                                     const PinDir* pins) {
  std::vector<AttachResult> results(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    try {
      results[i].counted =
          CountedInterface::attach(program, requests[i].ifindex, requests[i].name, mode, pins);
    } catch (const Error& e) {
      results[i].error = e;
    }
  }
  return results;
}

}  // namespace psnic
