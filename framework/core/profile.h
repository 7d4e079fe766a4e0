// Per-op wall-clock profile of a run, for finding where a training step spends its time when no
// system profiler works on the machine (Nsight Systems does not on our GPU hosts).
//
// Off by default and then free: a Scope is one branch on a global flag. On (SPARROW_PROFILE=1, or
// `train --profile`), the outermost Scope of each op waits for the device before and after, so
// its wall time is the op's device time plus one launch; nested scopes (ops called inside ops,
// ops inside a backward) count toward their outermost scope only. Backward nodes are reported as
// "bwd <op>". Phases (data, forward, backward, optimizer, …) are timed separately, so op times
// and phase times each add up on their own.
//
// The waits change the timing of the run being measured (no overlap of host and device work), so
// a profiled run is slower than a plain one: use it for shares, and plain runs for speed.
#pragma once
#include <cstdint>
#include <string>

namespace sparrow::profile {

bool enabled();
void set_enabled(bool on);

// Times the outermost scope on this thread under `name` (prefixed with `prefix` and a space
// when given). Names must outlive the run (string literals, op names).
class Scope {
 public:
  explicit Scope(const char* name, const char* prefix = nullptr) {
    if (enabled()) begin(name, prefix);
  }
  ~Scope() {
    if (entered_) end();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  void begin(const char* name, const char* prefix);
  void end();
  bool entered_ = false;  // counted in this thread's depth
  bool timing_ = false;   // the outermost scope: its time is recorded
  const char* name_ = nullptr;
  const char* prefix_ = nullptr;
  int64_t t0_ns_ = 0;
};

// Times a phase of the step (independent of op scopes).
class Phase {
 public:
  explicit Phase(const char* name) {
    if (enabled()) begin(name);
  }
  ~Phase() {
    if (name_) end();
  }
  Phase(const Phase&) = delete;
  Phase& operator=(const Phase&) = delete;

 private:
  void begin(const char* name);
  void end();
  const char* name_ = nullptr;
  int64_t t0_ns_ = 0;
};

// The table so far: phases, then ops by total time (ms, calls, share), as plain text.
std::string report();
void reset();

}  // namespace sparrow::profile

#define SPARROW_PROFILE_CAT2(a, b) a##b
#define SPARROW_PROFILE_CAT(a, b) SPARROW_PROFILE_CAT2(a, b)
// The op's scope, as the first line of an op's front end.
#define SPARROW_PROFILE_OP(name) ::sparrow::profile::Scope SPARROW_PROFILE_CAT(sparrow_profile_, __LINE__)(name)
