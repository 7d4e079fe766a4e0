// find_queries reads each synthetic query's distance back from the example's bytes: it must
// agree with the distance the task was asked to place (needle) and point at the queried key (recall).
#include <gtest/gtest.h>

#include <algorithm>

#include "train/data/synthetic.h"
#include "train/eval/position_loss.h"
#include "train/eval/retrieval_accuracy.h"

using namespace sparrow::train;

TEST(RetrievalAccuracy, NeedleDistanceIsTheOneTheTaskPlaced) {
  for (int64_t distance : {5, 17, 40, 100}) {
    SyntheticConfig c;
    c.task = "needle";
    c.distance = distance;
    SyntheticTask task(c, 4, 128, 7, 1);
    for (int64_t row = 0; row < 4; ++row) {
      const SyntheticExample ex = task.example(3, row);
      const std::vector<SyntheticQuery> q = find_queries(c, ex);
      ASSERT_EQ(q.size(), 1u);
      EXPECT_EQ(q[0].distance, distance);
      ASSERT_EQ(q[0].value_targets.size(), 2u);
      for (int64_t t : q[0].value_targets) EXPECT_NE(ex.targets[size_t(t)], kIgnoreIndex);
    }
  }
}

TEST(RetrievalAccuracy, RecallDistanceReachesBackToTheQueriedKey) {
  SyntheticConfig c;
  c.task = "recall";
  c.distance = 30;  // the filler gap between the listing and the queries
  c.pairs = 6;
  c.queries = 3;
  SyntheticTask task(c, 2, 128, 11, 1);
  for (int64_t row = 0; row < 2; ++row) {
    const SyntheticExample ex = task.example(0, row);
    const std::vector<SyntheticQuery> qs = find_queries(c, ex);
    ASSERT_EQ(qs.size(), 3u);
    int64_t scored = 0;
    for (int32_t t : ex.targets) scored += t != kIgnoreIndex;
    int64_t found = 0;
    for (const SyntheticQuery& q : qs) {
      // The answer lies past the gap, within the listing of 6 pairs of 4 bytes.
      EXPECT_GT(q.distance, c.distance);
      EXPECT_LE(q.distance, c.distance + 6 * 4 + 4 * 3);
      const int64_t query = q.value_targets[0] + 1 - 1 - c.key_len;  // the '?'
      EXPECT_EQ(ex.tokens[size_t(query)], '?');
      const int64_t key = query - q.distance;
      for (int64_t i = 0; i < c.key_len + c.value_len; ++i)
        EXPECT_EQ(ex.tokens[size_t(key + i)], ex.tokens[size_t(query + 1 + i)]);
      found += static_cast<int64_t>(q.value_targets.size());
    }
    EXPECT_EQ(found, scored);
  }
}

TEST(PositionBuckets, EdgesDoubleFromTheFirstWidthAndEndAtTheSequenceLength) {
  EXPECT_EQ(position_bucket_edges(4096), (std::vector<int64_t>{0, 512, 1024, 2048, 4096}));
  EXPECT_EQ(position_bucket_edges(3000), (std::vector<int64_t>{0, 512, 1024, 2048, 3000}));
  EXPECT_EQ(position_bucket_edges(300), (std::vector<int64_t>{0, 300}));
  EXPECT_EQ(position_bucket_edges(64, 8), (std::vector<int64_t>{0, 8, 16, 32, 64}));
  EXPECT_THROW(position_bucket_edges(64, 0), sparrow::Error);
}
