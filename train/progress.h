// The console progress line: step/total, loss, tokens/s, ETA, memory (what is held between
// steps and the peak so far: on a long sequence the step's transient activations are most of the
// peak, 1.3 GB against 78 GB for a 2M-token step). On a terminal it is redrawn in place (carriage
// return, cleared line); when piped, each update is a plain line.
#pragma once
#include <cstdint>
#include <string>

namespace sparrow::train {

class Progress {
 public:
  // quiet: print nothing (the ranks other than 0 of a distributed run).
  Progress(int64_t total_steps, bool force_plain, bool quiet = false);
  void update(int64_t step, double loss, double tokens_per_s, double sec_per_step, double mem_bytes,
              double peak_mem_bytes, const std::string& extra = "");
  // Prints a full line (eval results, warnings) without garbling the redrawn line.
  void message(const std::string& line);
  void finish();

 private:
  int64_t total_;
  bool tty_;
  bool quiet_;
  bool line_open_ = false;
};

std::string human_bytes(double b);
std::string human_duration(double seconds);

}  // namespace sparrow::train
