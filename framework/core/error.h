// Errors. Every check failure throws sparrow::Error with one line that names the op and the
// offending shapes/values, so callers (the trainer, tools) can print it and exit non-zero.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace sparrow {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
inline void cat(std::ostringstream&) {}
template <class T, class... R>
void cat(std::ostringstream& os, const T& v, const R&... r) {
  os << v;
  cat(os, r...);
}
}  // namespace detail

template <class... A>
[[noreturn]] void fail(const A&... a) {
  std::ostringstream os;
  detail::cat(os, a...);
  throw Error(os.str());
}

}  // namespace sparrow

// SPARROW_CHECK(cond, "op: ", "message parts", ...) throws sparrow::Error when cond is false.
#define SPARROW_CHECK(cond, ...)               \
  do {                                         \
    if (!(cond)) ::sparrow::fail(__VA_ARGS__); \
  } while (0)
