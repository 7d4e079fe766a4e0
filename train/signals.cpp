#include "train/signals.h"

#include <unistd.h>
#include <csignal>

namespace sparrow::train {
namespace {
volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_signal(int sig) {
  if (g_stop) _exit(128 + sig);  // second signal: the user insists
  g_stop = 1;
}
}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool stop_requested() { return g_stop != 0; }
}  // namespace sparrow::train
