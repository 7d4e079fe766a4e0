// The transformer's feed-forward block: fc (in → hidden) → activation → proj (hidden → out),
// then dropout on the output (GPT-2's residual dropout) when p > 0 and training.
#pragma once
#include <memory>

#include "framework/core/rng.h"
#include "framework/nn/linear.h"

namespace sparrow::nn {

enum class Activation : uint8_t { GELU, SiLU };
Activation parse_activation(const std::string& s);  // "gelu" | "silu"

struct MLPOptions {
  int64_t in = 0, hidden = 0;
  int64_t out = 0;  // 0: same as in
  Activation activation = Activation::GELU;
  bool bias = true;
  double dropout = 0.0;
  Generator* dropout_gen = nullptr;  // required when dropout > 0; owned by the model (checkpointed)
  DType dtype = DType::F32;
  Device device = Device::cpu();
};

class MLP : public Module {
 public:
  MLP(const MLPOptions& opt, Generator& init_gen);
  // residual (optional, shaped as the output): y = residual + MLP(x), added by the last GEMM when
  // no dropout acts (dropout applies to the MLP's output alone, so then it is a separate add).
  Tensor forward(const Tensor& x, const Tensor& residual = Tensor()) const;

  std::shared_ptr<Linear> fc, proj;

 private:
  Activation act_;
  double dropout_;
  Generator* dropout_gen_;
};

}  // namespace sparrow::nn
