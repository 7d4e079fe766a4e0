// The single-process communicator (what a run without a launcher uses) and the factory's errors.
#include <gtest/gtest.h>

#include "framework/dist/communicator.h"

namespace sparrow::dist {
namespace {

TEST(SingleCommunicator, CollectivesAreTheIdentity) {
  auto c = make_communicator("single");
  EXPECT_EQ(c->size(), 1);
  EXPECT_EQ(c->rank(), 0);
  Tensor t = from_vector(std::vector<double>{1, 2, 3}, {3});
  c->all_reduce(t)->wait();
  EXPECT_EQ(t.to_vector(), (std::vector<double>{1, 2, 3}));
  Tensor out = zeros({3});
  c->all_gather(t, out)->wait();
  EXPECT_EQ(out.to_vector(), t.to_vector());
  EXPECT_THROW(c->send(t, 1), Error);
  EXPECT_THROW(c->broadcast(t, 1), Error);
  Tensor strided = zeros({2, 2}).transpose(0, 1);
  EXPECT_THROW(c->all_reduce(strided), Error);
}

TEST(SingleCommunicator, AutoWithoutALauncherIsSingle) {
  if (launched_world_size() > 1) GTEST_SKIP() << "started by a launcher";
  EXPECT_EQ(make_communicator("auto")->backend(), "single");
}

TEST(CommunicatorFactory, UnknownBackendIsNamed) {
  try {
    make_communicator("gloo");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'gloo'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sparrow::dist
