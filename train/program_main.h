// The last line of defence of Sparrow's programs (train, eval, sample): whatever escapes the
// program's body (an allocation failing while the command line is read, an exception type nobody
// expected) ends as one line "<program>: <what>" and exit status 1, never as std::terminate's abort.
#pragma once
#include <exception>
#include <iostream>
#include <new>

namespace sparrow::train {

template <class Body>
int run_program(const char* program, Body&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    std::cerr << program << ": out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << program << ": " << e.what() << "\n";
  } catch (...) {
    std::cerr << program << ": unexpected error\n";
  }
  return 1;
}

}  // namespace sparrow::train
