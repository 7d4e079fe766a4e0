// Shapes and strides (in elements), and the broadcasting rule (NumPy's: align trailing
// dimensions; a size-1 dimension stretches).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sparrow {

using Shape = std::vector<int64_t>;

// The element count; throws sparrow::Error when it exceeds int64 (a header claiming
// [2^32, 2^32] must not wrap to 0 and pass as an empty tensor).
int64_t shape_numel(const Shape& s);
// shape_numel · elem_size in bytes, with the same overflow check.
int64_t shape_nbytes(const Shape& s, size_t elem_size);
Shape contiguous_strides(const Shape& s);
std::string shape_str(const Shape& s);                                   // "[2, 3, 4]"
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);  // throws naming op
int64_t normalize_dim(int64_t dim, int64_t ndim, const char* op);        // -1 → ndim-1; checks range

}  // namespace sparrow
