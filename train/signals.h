// SIGINT/SIGTERM handling for the trainer: the first signal asks the loop to stop after the
// current step (it then checkpoints and exits 0); a second one exits at once.
#pragma once

namespace sparrow::train {
void install_stop_handlers();
bool stop_requested();
}  // namespace sparrow::train
