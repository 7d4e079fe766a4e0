#include "framework/nn/mlp.h"

#include "framework/ops/ops.h"

namespace sparrow::nn {

Activation parse_activation(const std::string& s) {
  if (s == "gelu") return Activation::GELU;
  if (s == "silu") return Activation::SiLU;
  fail("MLP: unknown activation '", s, "' (expected gelu or silu)");
}

MLP::MLP(const MLPOptions& o, Generator& gen) : act_(o.activation), dropout_(o.dropout), dropout_gen_(o.dropout_gen) {
  SPARROW_CHECK(o.in > 0 && o.hidden > 0 && o.out >= 0, "MLP: bad sizes in=", o.in, " hidden=", o.hidden,
                " out=", o.out);
  SPARROW_CHECK(o.dropout >= 0.0 && o.dropout < 1.0, "MLP: dropout must lie in [0, 1), got ", o.dropout);
  SPARROW_CHECK(o.dropout == 0.0 || o.dropout_gen, "MLP: dropout ", o.dropout, " needs a dropout generator");
  fc = register_module("fc", std::make_shared<Linear>(o.in, o.hidden, o.bias, gen, o.dtype, o.device));
  proj =
      register_module("proj", std::make_shared<Linear>(o.hidden, o.out ? o.out : o.in, o.bias, gen, o.dtype, o.device));
}

Tensor MLP::forward(const Tensor& x, const Tensor& residual) const {
  const bool drop = dropout_ > 0.0 && is_training();
  const Tensor in_gemm = drop ? Tensor() : residual;
  Tensor y;
  if (act_ == Activation::GELU) {
    // One fused node (the GELU rides in the GEMM epilogues on the GPU); weights cast to the
    // activations' dtype at use, as Linear does.
    const DType dt = x.dtype();
    auto at = [dt](const Tensor& t) { return t.defined() ? t.to(dt) : Tensor(); };
    y = mlp_gelu(x, at(fc->weight), at(fc->bias), at(proj->weight), at(proj->bias), in_gemm);
  } else {
    y = proj->forward(silu(fc->forward(x)), in_gemm);
  }
  if (!drop) return y;
  y = dropout(y, dropout_, *dropout_gen_, true);
  return residual.defined() ? add(residual, y) : y;
}

}  // namespace sparrow::nn
