#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace psnic {

// The host's switch between ordinary and expedited RCU grace periods.
inline constexpr const char* kRcuExpeditedKnob = "/sys/kernel/rcu_expedited";
// What psnic tells "large" by: more than this many interfaces to attach or detach at once (a
// cold start, a reconcile's backlog, an ephemeral agent's exit). Unexpedited, each interface
// costs two grace periods of 12-15 ms under the RTNL lock, so 50 take 1.2-1.5 s: most of the
// cold start's 2 s target on their own. A container's start (one veth, a pod's few) or a
// compose file's dozen stay below, so the host-wide knob is only touched when there is much
// to gain.
inline constexpr size_t kExpediteAbove = 50;

// Expedited RCU grace periods (`--expedite-attach`), held while psnic works off a large backlog
// of TCX attaches or detaches. Every TCX link attach and detach waits for a grace period
// (synchronize_rcu() in tcx_entry_sync()) while holding the RTNL lock; expedited, that wait is
// ~0.1 ms instead of ~12 ms. The knob is host-wide and an expedited grace period interrupts
// every CPU (an IPI each), so it is set only around the backlog and restored at once after.
//
// Crash-safe: before setting the knob, the value it had is recorded in `record` (PIN_DIR/
// rcu_expedited, a symlink whose target is the value: a bpf filesystem holds no regular files),
// and the record is removed once the value is back. An agent killed meanwhile leaves the record
// for the next agent or `psnic-agent --cleanup` (restore_expedited()).
//
// psnic changes the knob only from 0 (ordinary grace periods) to 1 and back: one that is already
// non-zero was set by someone else (the host's administrator, another agent), who restores it.
class ExpeditedGracePeriods {
 public:
  ExpeditedGracePeriods(std::string knob, std::string record)
      : knob_(std::move(knob)), record_(std::move(record)) {}
  ExpeditedGracePeriods(const ExpeditedGracePeriods&) = delete;
  ExpeditedGracePeriods& operator=(const ExpeditedGracePeriods&) = delete;
  ~ExpeditedGracePeriods() { end(); }

  // Whether the knob can be set: it exists and opens for writing (no EROFS in a container whose
  // /sys is read-only, no EACCES). When not, one warning, and begin() does nothing from then on.
  bool usable();
  // Expedites grace periods until end(): records the knob's value, then sets it to 1 (logged
  // with both values). Nothing when it is set already, by this object or by anyone. Never
  // throws: a failure is one warning for the object's life. Whether this object holds it now.
  bool begin();
  // Gives the knob back the value begin() found (logged) and removes the record; nothing when
  // begin() set nothing. Never throws: a value that cannot be written back stays recorded.
  void end();
  bool held() const { return previous_.has_value(); }

 private:
  void warn_once(const std::string& cause);

  std::string knob_;
  std::string record_;
  std::optional<std::string> previous_;  // while held: the value begin() found
  bool unusable_ = false;
};

// What an agent that died while holding the knob left: writes the value recorded in `record`
// back to `knob` (logged) and removes the record. The value restored; nullopt when there was no
// record, or it could not be written back (warned; the record stays).
std::optional<std::string> restore_expedited(const std::string& knob, const std::string& record);

}  // namespace psnic
