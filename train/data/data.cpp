#include "train/data/data.h"

#include "train/data/corpus_windows.h"
#include "train/data/synthetic.h"

namespace sparrow::train {

DataPipeline open_data(const Config& cfg) {
  const DataConfig& d = cfg.data;
  const TrainSection& t = cfg.train;
  DataPipeline p;
  if (d.source == "synthetic") {
    p.train = Sampler(std::make_shared<SyntheticTask>(d.synthetic, t.batch_size, t.seq_len, t.seed, 0));
    p.val = Sampler(std::make_shared<SyntheticTask>(d.synthetic, t.batch_size, t.seq_len, t.seed, 1));
    return p;
  }
  SPARROW_CHECK(d.source == "corpus", "data.source: expected corpus or synthetic, got '", d.source, "'");
  p.corpus = Corpus::open(d.path, d.cache_dir, d.doc_bytes);
  p.train = Sampler(std::make_shared<CorpusWindows>(p.corpus, p.corpus->train_range(d.val_fraction), "train",
                                                    t.batch_size, t.seq_len, t.seed));
  if (d.val_fraction > 0)
    p.val = Sampler(std::make_shared<CorpusWindows>(p.corpus, p.corpus->val_range(d.val_fraction), "validation",
                                                    t.batch_size, t.seq_len, t.seed));
  return p;
}

std::string DataPipeline::describe() const {
  std::string s = train.valid() ? train.source().describe() : "no data";
  if (val.valid()) s += "; " + val.source().describe();
  return s;
}

}  // namespace sparrow::train
