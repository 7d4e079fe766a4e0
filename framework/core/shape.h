// Shapes and strides (in elements), and the broadcasting rule (NumPy's: align trailing
// dimensions; a size-1 dimension stretches).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sparrow {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);
std::string shape_str(const Shape& s);            // "[2, 3, 4]"
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);  // throws naming op
int64_t normalize_dim(int64_t dim, int64_t ndim, const char* op);        // -1 → ndim-1; checks range

}  // namespace sparrow
