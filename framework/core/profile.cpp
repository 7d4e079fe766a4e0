#include "framework/core/profile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#ifdef SPARROW_WITH_CUDA  // runtime.h includes the CUDA headers, which a CPU-only build lacks
#include "framework/cuda/runtime.h"
#endif
#include "framework/core/device.h"

namespace sparrow::profile {

namespace {

bool from_env() {
  const char* v = std::getenv("SPARROW_PROFILE");
  return v && *v && std::strcmp(v, "0") != 0;
}

bool g_enabled = from_env();
thread_local int t_depth = 0;

struct Totals {
  int64_t ns = 0;
  int64_t calls = 0;
};
std::mutex g_mu;
std::map<std::string, Totals> g_ops, g_phases;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Waits for queued device work, so the clock brackets exactly the work issued in between.
void wait_device() {
#ifdef SPARROW_WITH_CUDA  // cuda::synchronize (runtime.h) exists in CUDA builds only
  if (cuda_available()) cuda::synchronize();
#endif
}

void add(std::map<std::string, Totals>& m, std::string key, int64_t ns) {
  std::lock_guard<std::mutex> lock(g_mu);
  Totals& t = m[std::move(key)];
  t.ns += ns;
  t.calls += 1;
}

void table(std::string& out, const char* title, const std::map<std::string, Totals>& m) {
  std::vector<std::pair<std::string, Totals>> rows(m.begin(), m.end());
  std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.second.ns > b.second.ns; });
  int64_t total = 0;
  for (auto& r : rows) total += r.second.ns;
  char line[256];
  std::snprintf(line, sizeof line, "%-34s %12s %10s %8s %12s\n", title, "total ms", "calls", "share", "us/call");
  out += line;
  for (auto& [name, t] : rows) {
    std::snprintf(line, sizeof line, "%-34s %12.2f %10lld %7.1f%% %12.1f\n", name.c_str(), t.ns / 1e6,
                  static_cast<long long>(t.calls), total ? 100.0 * double(t.ns) / double(total) : 0.0,
                  t.ns / 1e3 / double(std::max<int64_t>(t.calls, 1)));
    out += line;
  }
  std::snprintf(line, sizeof line, "%-34s %12.2f\n", "(sum)", total / 1e6);
  out += line;
}

}  // namespace

bool enabled() { return g_enabled; }
void set_enabled(bool on) { g_enabled = on; }

void Scope::begin(const char* name, const char* prefix) {
  entered_ = true;
  if (t_depth++ > 0) return;
  timing_ = true;
  name_ = name;
  prefix_ = prefix;
  wait_device();
  t0_ns_ = now_ns();
}

void Scope::end() {
  --t_depth;
  if (!timing_) return;
  wait_device();
  const int64_t ns = now_ns() - t0_ns_;
  add(g_ops, prefix_ ? std::string(prefix_) + " " + name_ : std::string(name_), ns);
}

void Phase::begin(const char* name) {
  name_ = name;
  wait_device();
  t0_ns_ = now_ns();
}

void Phase::end() {
  wait_device();
  add(g_phases, name_, now_ns() - t0_ns_);
}

std::string report() {
  std::string out;
  std::lock_guard<std::mutex> lock(g_mu);
  table(out, "phase", g_phases);
  out += "\n";
  table(out, "op (outermost scopes)", g_ops);
  return out;
}

void reset() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_ops.clear();
  g_phases.clear();
}

}  // namespace sparrow::profile
