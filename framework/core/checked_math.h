// Overflow-checked integer arithmetic: the one place sizes are multiplied where a hostile
// input (a file header, a config value) could push the product past the type's range. A
// wrapped product would pass every later check and describe a much smaller (wrong) buffer.
#pragma once
#include <optional>
#include <type_traits>

namespace sparrow {

// a · b, or nullopt when the exact product does not fit in T.
template <class T>
[[nodiscard]] constexpr std::optional<T> checked_mul(T a, T b) {
  static_assert(std::is_integral_v<T>, "checked_mul is for integers");
  T r{};
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

}  // namespace sparrow
