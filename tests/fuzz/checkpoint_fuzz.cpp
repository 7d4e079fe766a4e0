// Fuzzes the checkpoint state reader (train/checkpoint.cpp): state.json → TrainState.
//
// A real checkpoint of a tiny model is written once; each input replaces its state.json and
// the checkpoint is loaded. Contract checked: load_checkpoint either returns or throws
// CheckpointError naming the file (any other exception, crash or UB is a finding).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "framework/core/rng.h"
#include "framework/nn/linear.h"
#include "framework/nn/parameter_buffer.h"
#include "framework/optim/adamw.h"
#include "fuzz_util.h"
#include "train/checkpoint.h"

using namespace sparrow;

namespace {

struct Fixture {
  Generator gen{1};
  nn::Linear model{3, 2, true, gen};
  nn::ParameterBuffer params = nn::ParameterBuffer::pack(model);
  optim::AdamW opt{params};
  std::string dir;
  Fixture() {
    train::TrainState st;
    st.step = 7;
    st.rng["dropout"] = {1, 2};
    st.sampler["train"] = 3;
    st.schedule["sparsity"] = {0.5};
    dir = train::save_checkpoint((fuzz::scratch_dir() / "run").string(), st, params, opt.state(), 0);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  fuzz::write_bytes(f.dir + "/state.json", std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    train::TrainState s = train::load_checkpoint(f.dir, f.params, f.opt);
    (void)s;
  } catch (const train::CheckpointError&) {}
  return 0;
}
