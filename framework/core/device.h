// Where a tensor's storage lives: the host, or CUDA device N.
#pragma once
#include <cstdint>
#include <string>

namespace sparrow {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& o) const { return type == o.type && (is_cpu() || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
  // "cpu", "cuda", "cuda:N"; throws std::invalid_argument otherwise.
  static Device parse(const std::string& s);
};

// True when this build has CUDA and a device is visible. Cheap after the first call.
bool cuda_available();
int cuda_device_count();

}  // namespace sparrow
