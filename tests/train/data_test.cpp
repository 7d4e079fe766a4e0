// The data pipeline: corpus reading (folders, gzip), the mmapped token cache, the document
// split, deterministic and resumable batches, one-line errors, and the synthetic tasks' targets.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "train/config/config.h"
#include "train/data/corpus.h"
#include "train/data/corpus_windows.h"
#include "train/data/data.h"
#include "train/data/synthetic.h"

namespace fs = std::filesystem;
using namespace sparrow;
using namespace sparrow::train;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() / ("sparrow_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
  fs::path operator/(const std::string& p) const { return path / p; }
};

void write(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
}

void write_gz(const fs::path& p, const std::string& content) {
  gzFile f = gzopen(p.string().c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, content.data(), static_cast<unsigned>(content.size())), static_cast<int>(content.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

std::string corpus_text(const Corpus& c) { return std::string(reinterpret_cast<const char*>(c.tokens()), c.size()); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::vector<int32_t> ints(const Tensor& t) {
  EXPECT_EQ(t.dtype(), DType::I32);
  const int32_t* p = t.data<int32_t>();
  return std::vector<int32_t>(p, p + t.numel());
}

const std::string kSep(1, '\0');

}  // namespace

TEST(Corpus, FolderIsReadRecursivelyInPathOrderSkippingBinaryFiles) {
  TempDir src, cache;
  write(src / "b/two.txt", "second file\n");
  write(src / "a.txt", "first\n");
  write(src / "c.bin", std::string("bin\0ary", 7));
  write(src / "z/sub/three.md", "third");
  write(src / "empty.txt", "");
  auto c = Corpus::open(src.str(), cache.str());
  EXPECT_EQ(corpus_text(*c), "first\n" + kSep + "second file\n" + kSep + "third" + kSep);
  EXPECT_EQ(c->files(), 3);
  EXPECT_EQ(c->skipped_binary(), 1);
  EXPECT_EQ(c->doc_starts(), (std::vector<int64_t>{0, 7, 20, 26}));
  EXPECT_EQ(c->num_docs(), 3);
  EXPECT_FALSE(c->loaded_from_cache());
  EXPECT_EQ(fs::path(c->cache_file()).parent_path(), cache.path);
}

TEST(Corpus, GzipFilesAreInflated) {
  TempDir src, cache;
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "line " + std::to_string(i) + " of a compressed file\n";
  write_gz(src / "one.txt.gz", text);
  auto c = Corpus::open((src / "one.txt.gz").string(), cache.str());
  EXPECT_EQ(corpus_text(*c), text + kSep);
  EXPECT_LT(fs::file_size(src / "one.txt.gz"), text.size() / 4);  // it really was compressed

  // In a folder, next to a plain file.
  write(src / "plain.txt", "plain");
  auto d = Corpus::open(src.str(), cache.str());
  EXPECT_EQ(corpus_text(*d), text + kSep + "plain" + kSep);
}

TEST(Corpus, SecondOpenMapsTheCacheFile) {
  TempDir src, cache;
  write(src / "a.txt", "hello world\n");
  write(src / "b.txt", "more text\n");
  auto first = Corpus::open(src.str(), cache.str());
  ASSERT_FALSE(first->loaded_from_cache());
  ASSERT_TRUE(fs::exists(first->cache_file()));
  EXPECT_EQ(fs::file_size(first->cache_file()), static_cast<uintmax_t>(first->size()));

  auto second = Corpus::open(src.str(), cache.str());
  EXPECT_TRUE(second->loaded_from_cache());
  EXPECT_EQ(second->cache_file(), first->cache_file());
  EXPECT_EQ(corpus_text(*second), corpus_text(*first));
  EXPECT_EQ(second->doc_starts(), first->doc_starts());
  EXPECT_EQ(second->files(), 0);  // nothing was read from the sources

  // The tokens come from the cache file itself: change a byte there (same size) and a new open
  // sees it, although the source is unchanged.
  {
    std::fstream f(first->cache_file(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f.put('J');
  }
  auto third = Corpus::open(src.str(), cache.str());
  EXPECT_TRUE(third->loaded_from_cache());
  EXPECT_EQ(corpus_text(*third)[0], 'J');

  // A changed source (size and mtime) is a different cache entry, rebuilt from the text.
  write(src / "a.txt", "hello again, world\n");
  auto fourth = Corpus::open(src.str(), cache.str());
  EXPECT_FALSE(fourth->loaded_from_cache());
  EXPECT_NE(fourth->cache_file(), first->cache_file());
  EXPECT_EQ(corpus_text(*fourth), "hello again, world\n" + kSep + "more text\n" + kSep);
}

TEST(Corpus, LongFilesAreCutIntoDocumentsAtLineBreaks) {
  TempDir src, cache;
  std::string text;
  for (int i = 0; i < 10; ++i) text += "line " + std::to_string(i) + "...\n";  // 10 lines of 10 bytes
  ASSERT_EQ(text.size(), 100u);
  write(src / "long.txt", text);
  auto c = Corpus::open((src / "long.txt").string(), cache.str(), /*doc_bytes=*/25);
  EXPECT_EQ(c->doc_starts(), (std::vector<int64_t>{0, 30, 60, 90, 101}));
  EXPECT_EQ(corpus_text(*c), text + kSep);  // one text: no separators between its pieces
}

TEST(Corpus, ValidationIsTrailingWholeDocumentsDisjointFromTrain) {
  TempDir src, cache;
  std::string text;
  for (int i = 0; i < 10; ++i) text += "line " + std::to_string(i) + "...\n";
  write(src / "long.txt", text);
  auto c = Corpus::open((src / "long.txt").string(), cache.str(), 25);
  TokenRange train = c->train_range(0.25), val = c->val_range(0.25);
  // 25% of 101 tokens = 25.25: the last document (11 tokens) is too few, the last two (41) do.
  EXPECT_EQ(train.begin, 0);
  EXPECT_EQ(train.end, 60);
  EXPECT_EQ(val.begin, 60);
  EXPECT_EQ(val.end, 101);
  EXPECT_EQ(train.end_doc, val.first_doc);
  EXPECT_EQ(c->train_range(0).end, 101);
  EXPECT_EQ(c->val_range(0).size(), 0);

  // Every window the samplers draw stays inside its split.
  CorpusWindows tw(c, train, "train", 4, 8, 1), vw(c, val, "validation", 4, 8, 1);
  for (uint64_t i = 0; i < 200; ++i)
    for (int64_t r = 0; r < 4; ++r) {
      int64_t ts = tw.window_start(i, r), vs = vw.window_start(i, r);
      EXPECT_TRUE(ts >= train.begin && ts + 9 <= train.end) << ts;
      EXPECT_TRUE(vs >= val.begin && vs + 9 <= val.end) << vs;
    }
}

TEST(Sampler, BatchesAreNextTokenWindowsDeterministicUnderTheSeed) {
  TempDir src, cache;
  std::string text;
  for (int i = 0; i < 300; ++i) text += "sentence number " + std::to_string(i) + " of the corpus.\n";
  write(src / "c.txt", text);
  Config cfg = load_config("", {"data.path=" + src.str(), "data.cache_dir=" + cache.str(), "data.val_fraction=0.1",
                                "data.doc_bytes=1000", "train.seq_len=32", "train.batch_size=3", "train.seed=5"});
  DataPipeline a = open_data(cfg), b = open_data(cfg);
  ASSERT_TRUE(a.val.valid());
  const uint8_t* tok = a.corpus->tokens();
  std::set<std::vector<int32_t>> seen;
  for (int step = 0; step < 5; ++step) {
    Batch x = a.train.next(), y = b.train.next();
    EXPECT_EQ(x.inputs.shape(), (Shape{3, 32}));
    EXPECT_EQ(x.targets.shape(), (Shape{3, 32}));
    std::vector<int32_t> in = ints(x.inputs), tg = ints(x.targets);
    EXPECT_EQ(in, ints(y.inputs));
    EXPECT_EQ(tg, ints(y.targets));
    seen.insert(in);
    const auto& w = static_cast<const CorpusWindows&>(a.train.source());
    for (int64_t r = 0; r < 3; ++r) {
      int64_t s = w.window_start(step, r);
      for (int64_t t = 0; t < 32; ++t) {
        EXPECT_EQ(in[r * 32 + t], tok[s + t]);
        EXPECT_EQ(tg[r * 32 + t], tok[s + t + 1]);  // the next token
      }
    }
  }
  EXPECT_EQ(seen.size(), 5u);  // the stream moves on
  EXPECT_EQ(a.train.state(), 5u);

  // Another seed draws other windows.
  cfg.train.seed = 6;
  DataPipeline other = open_data(cfg);
  EXPECT_NE(ints(other.train.next().inputs),
            ints(open_data(load_config(
                               "", {"data.path=" + src.str(), "data.cache_dir=" + cache.str(), "data.val_fraction=0.1",
                                    "data.doc_bytes=1000", "train.seq_len=32", "train.batch_size=3", "train.seed=5"}))
                     .train.next()
                     .inputs));
}

TEST(Sampler, WindowsStayInsideOneDocument) {
  TempDir src, cache;
  // Documents of very different lengths, including some shorter than one window.
  write(src / "a.txt", std::string(40, 'a') + "\n");
  write(src / "b.txt", std::string(500, 'b') + "\n");
  write(src / "c.txt", std::string(10, 'c') + "\n");
  write(src / "d.txt", std::string(300, 'd') + "\n");
  write(src / "e.txt", std::string(200, 'e') + "\n");
  Config cfg = load_config("", {"data.path=" + src.str(), "data.cache_dir=" + cache.str(), "data.val_fraction=0",
                                "train.seq_len=64", "train.batch_size=8", "train.seed=3"});
  DataPipeline p = open_data(cfg);
  const auto& w = static_cast<const CorpusWindows&>(p.train.source());
  const auto& ds = p.corpus->doc_starts();
  std::set<int64_t> docs_hit;
  for (uint64_t i = 0; i < 200; ++i)
    for (int64_t r = 0; r < 8; ++r) {
      const int64_t s = w.window_start(i, r);
      const int64_t d = std::upper_bound(ds.begin(), ds.end(), s) - ds.begin() - 1;
      // The whole window (seq_len + 1 tokens) lies in document d's text, before its separator.
      ASSERT_LE(s + 65, ds[size_t(d) + 1] - 1) << "batch " << i << " row " << r;
      docs_hit.insert(d);
    }
  EXPECT_EQ(docs_hit.size(), 3u);  // b, d, e: the documents that hold a window; never a or c
  // No document holds a window: windows span documents, and describe() says so.
  Config tiny = load_config("", {"data.path=" + src.str(), "data.cache_dir=" + cache.str(), "data.val_fraction=0",
                                 "train.seq_len=600", "train.batch_size=2"});
  DataPipeline q = open_data(tiny);
  EXPECT_NE(q.train.source().describe().find("span documents"), std::string::npos) << q.train.source().describe();
  EXPECT_EQ(q.train.next().inputs.shape(), (Shape{2, 600}));
}

TEST(Sampler, ResumeAtStepKDrawsTheUninterruptedBatches) {
  TempDir src, cache;
  std::string text;
  for (int i = 0; i < 500; ++i) text += "word" + std::to_string(i * 7919 % 1000) + " ";
  write(src / "c.txt", text);
  Config cfg = load_config("", {"data.path=" + src.str(), "data.cache_dir=" + cache.str(), "data.val_fraction=0",
                                "train.seq_len=16", "train.batch_size=2"});
  DataPipeline run = open_data(cfg);
  EXPECT_FALSE(run.val.valid());
  std::vector<std::vector<int32_t>> uninterrupted;
  for (int i = 0; i < 8; ++i) uninterrupted.push_back(ints(run.train.next().inputs));

  DataPipeline first = open_data(cfg);
  for (int i = 0; i < 3; ++i) first.train.next();
  const uint64_t saved = first.train.state();  // what a checkpoint at step 3 holds
  DataPipeline resumed = open_data(cfg);       // a new process
  resumed.train.set_state(saved);
  for (int i = 3; i < 8; ++i) EXPECT_EQ(ints(resumed.train.next().inputs), uninterrupted[i]) << i;
}

TEST(Data, ErrorsNameThePath) {
  TempDir src, cache;
  const std::string missing = (src / "nope").string();
  EXPECT_EQ(error_of([&] { Corpus::open(missing, cache.str()); }), missing + ": no such file or folder (data.path)");
  EXPECT_EQ(error_of([&] { Corpus::open(src.str(), cache.str()); }), src.str() + ": the corpus is empty (no files)");
  write(src / "e.txt", "");
  write(src / "x.bin", std::string("\0\1\2", 3));
  EXPECT_EQ(error_of([&] { Corpus::open(src.str(), cache.str()); }),
            src.str() + ": the corpus is empty (no text; binary files skipped: 1)");
  EXPECT_EQ(error_of([&] { Corpus::open((src / "x.bin").string(), cache.str()); }),
            (src / "x.bin").string() + ": binary file (contains NUL bytes), not text");
  write(src / "t.txt", "short text");  // 10 bytes + separator
  Config cfg = load_config(
      "", {"data.path=" + src.str(), "data.cache_dir=" + cache.str(), "data.val_fraction=0", "train.seq_len=64"});
  EXPECT_EQ(error_of([&] { open_data(cfg); }),
            src.str() + ": the train split has 11 tokens, fewer than one sequence of train.seq_len+1 = 65");
  cfg.data.val_fraction = 0.5;
  EXPECT_EQ(error_of([&] { open_data(cfg); }),
            src.str() +
                ": one document cannot be split into train and validation; set data.val_fraction: 0 or a "
                "smaller data.doc_bytes");
  write(src / "bad.gz", "\x1f\x8b\x08\x00garbage that is not deflate data at all");
  std::string msg = error_of([&] { Corpus::open((src / "bad.gz").string(), cache.str()); });
  EXPECT_EQ(msg.rfind((src / "bad.gz").string() + ": read error: ", 0), 0u) << msg;
}

TEST(Data, GcideDictionaryFromDictGcide) {
  const std::string path = "/usr/share/dictd/gcide.dict.dz";
  if (!fs::exists(path)) GTEST_SKIP() << path << " is not installed (apt-get install dict-gcide)";
  TempDir cache;
  auto c = Corpus::open(path, cache.str());
  EXPECT_GT(c->size(), 30'000'000);
  EXPECT_GT(c->num_docs(), 20);  // cut at 1 MiB so that it splits by document
  const std::string head(reinterpret_cast<const char*>(c->tokens()), 4096);
  EXPECT_NE(head.find("Collaborative International Dictionary of English"), std::string::npos);
  EXPECT_TRUE(Corpus::open(path, cache.str())->loaded_from_cache());
}

namespace {

// Positions t where targets[t] is scored.
std::vector<int64_t> scored(const SyntheticExample& ex) {
  std::vector<int64_t> s;
  for (size_t t = 0; t < ex.targets.size(); ++t)
    if (ex.targets[t] != kIgnoreIndex) s.push_back(static_cast<int64_t>(t));
  return s;
}

}  // namespace

TEST(Synthetic, NeedleTargetIsTheValueStoredDistanceTokensBefore) {
  SyntheticConfig cfg;
  cfg.task = "needle";
  cfg.distance = 40;
  cfg.key_len = 2;
  cfg.value_len = 3;
  SyntheticTask task(cfg, 4, 64, 11, 0);
  for (uint64_t i = 0; i < 5; ++i)
    for (int64_t r = 0; r < 4; ++r) {
      SyntheticExample ex = task.example(i, r);
      ASSERT_EQ(ex.tokens.size(), 65u);
      const auto& x = ex.tokens;
      int64_t q = 65 - 6, p = q - 40;
      EXPECT_EQ(x[q], '?');
      EXPECT_EQ(x[p], '#');
      EXPECT_EQ(std::count(x.begin(), x.end(), '#'), 1);
      EXPECT_EQ(std::count(x.begin(), x.end(), '?'), 1);
      for (int k = 0; k < 2; ++k) EXPECT_EQ(x[p + 1 + k], x[q + 1 + k]);  // the query repeats the key
      std::vector<int64_t> s = scored(ex);
      ASSERT_EQ(s, (std::vector<int64_t>{q + 2, q + 3, q + 4}));  // predicting the 3 value bytes
      for (int v = 0; v < 3; ++v) {
        EXPECT_EQ(ex.targets[q + 2 + v], x[p + 3 + v]);  // …equal to the needle's value
        EXPECT_TRUE(ex.targets[q + 2 + v] >= '0' && ex.targets[q + 2 + v] <= '9');
      }
    }
  // The batch tensors hold the same rows.
  Batch b = task.batch_at(2);
  SyntheticExample ex = task.example(2, 1);
  std::vector<int32_t> in = ints(b.inputs), tg = ints(b.targets);
  EXPECT_EQ(std::vector<int32_t>(in.begin() + 64, in.begin() + 128),
            std::vector<int32_t>(ex.tokens.begin(), ex.tokens.end() - 1));
  EXPECT_EQ(std::vector<int32_t>(tg.begin() + 64, tg.begin() + 128), ex.targets);
  // Deterministic; another salt (the validation stream) differs.
  EXPECT_EQ(ints(task.batch_at(3).inputs), ints(task.batch_at(3).inputs));
  EXPECT_NE(ints(SyntheticTask(cfg, 4, 64, 11, 1).batch_at(3).inputs), ints(task.batch_at(3).inputs));

  // Random distance: the needle is anywhere it fits, and the target still matches.
  cfg.distance = 0;
  SyntheticTask any(cfg, 1, 64, 3, 0);
  std::set<int64_t> distances;
  for (uint64_t i = 0; i < 100; ++i) {
    SyntheticExample e = any.example(i, 0);
    int64_t q = 59, p = std::find(e.tokens.begin(), e.tokens.end(), '#') - e.tokens.begin();
    distances.insert(q - p);
    EXPECT_EQ(e.targets[q + 2], e.tokens[p + 3]);
  }
  EXPECT_GT(distances.size(), 20u);
  EXPECT_GE(*distances.begin(), 6);
  EXPECT_LE(*distances.rbegin(), 59);
}

TEST(Synthetic, RecallTargetsAreTheQueriedKeysValues) {
  SyntheticConfig cfg;
  cfg.task = "recall";
  cfg.pairs = 6;
  cfg.queries = 3;
  cfg.key_len = 2;
  cfg.value_len = 2;
  cfg.distance = 20;
  SyntheticTask task(cfg, 2, 80, 9, 0);
  for (uint64_t i = 0; i < 10; ++i)
    for (int64_t r = 0; r < 2; ++r) {
      SyntheticExample ex = task.example(i, r);
      const auto& x = ex.tokens;
      const int64_t qs = 81 - 3 * 5, ps = qs - 20 - 6 * 4;
      std::map<std::vector<int32_t>, std::vector<int32_t>> pairs;
      for (int j = 0; j < 6; ++j) {
        std::vector<int32_t> k(x.begin() + ps + 4 * j, x.begin() + ps + 4 * j + 2);
        std::vector<int32_t> v(x.begin() + ps + 4 * j + 2, x.begin() + ps + 4 * j + 4);
        for (int32_t b : k) EXPECT_TRUE(b >= 'A' && b <= 'Z');
        for (int32_t b : v) EXPECT_TRUE(b >= '0' && b <= '9');
        pairs[k] = v;
      }
      EXPECT_EQ(pairs.size(), 6u);  // distinct keys
      for (int64_t t = ps - 1; t >= 0; --t) EXPECT_TRUE(x[t] >= 'a' && x[t] <= 'z');
      for (int64_t t = ps + 24; t < qs; ++t) EXPECT_TRUE(x[t] >= 'a' && x[t] <= 'z');  // the gap
      std::set<std::vector<int32_t>> asked;
      std::vector<int64_t> expect_scored;
      for (int j = 0; j < 3; ++j) {
        int64_t at = qs + 5 * j;
        EXPECT_EQ(x[at], '?');
        std::vector<int32_t> k(x.begin() + at + 1, x.begin() + at + 3);
        ASSERT_TRUE(pairs.count(k));
        asked.insert(k);
        for (int v = 0; v < 2; ++v) {
          EXPECT_EQ(ex.targets[at + 2 + v], pairs[k][v]);
          expect_scored.push_back(at + 2 + v);
        }
      }
      EXPECT_EQ(asked.size(), 3u);  // distinct queries
      EXPECT_EQ(scored(ex), expect_scored);
    }
}

TEST(Synthetic, TooShortASequenceIsAnError) {
  SyntheticConfig cfg;
  cfg.task = "needle";
  cfg.distance = 100;
  EXPECT_EQ(
      error_of([&] { SyntheticTask(cfg, 1, 64, 0, 0); }),
      "data.synthetic: the needle task (distance 100, key_len 2, value_len 2) needs train.seq_len >= 104, got 64");
  cfg.distance = 3;
  EXPECT_EQ(
      error_of([&] { SyntheticTask(cfg, 1, 64, 0, 0); }),
      "data.synthetic.distance: the needle needs key_len+value_len+1 = 5 tokens before the query, got distance 3");
  EXPECT_NO_THROW(SyntheticTask(cfg = SyntheticConfig{}, 1, 9, 0, 0));  // distance 0 fits in 2·4+1
  EXPECT_EQ(SyntheticTask::min_seq_len(SyntheticConfig{}), 9);
}

TEST(Data, SyntheticPipelineFromConfig) {
  Config cfg = load_config(
      "", {"data.source=synthetic", "data.synthetic.task=recall", "train.seq_len=128", "train.batch_size=2"});
  DataPipeline p = open_data(cfg);
  EXPECT_EQ(p.corpus, nullptr);
  ASSERT_TRUE(p.val.valid());
  Batch b = p.train.next();
  EXPECT_EQ(b.inputs.shape(), (Shape{2, 128}));
  std::vector<int32_t> tg = ints(b.targets);
  EXPECT_EQ(std::count_if(tg.begin(), tg.end(), [](int32_t t) { return t != kIgnoreIndex; }), 2 * 4 * 2);
  EXPECT_NE(ints(p.val.next().inputs), ints(b.inputs));
}
