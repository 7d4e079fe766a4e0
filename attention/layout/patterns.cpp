// Candidate generators and the budgeted union (see patterns.h for the definitions).
#include "attention/layout/patterns.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <unordered_map>

#include "framework/core/error.h"
#include "framework/core/rng.h"

namespace sparrow::attn {

namespace {

constexpr int64_t kNoLimit = std::numeric_limits<int64_t>::max() / 4;

// Columns on a ladder around the row: down_, down_ − step, … ≥ lo and up_, up_ + step, … ≤ hi,
// nearest to the row first (the block behind wins a tie). The configured pattern is the part
// inside [cfg_lo, cfg_hi] — an interval around the row, so on each side a prefix of the ladder;
// beyond it is the pattern's growth (a wider window, further multiples).
class Ladder final : public CandidateStream {
 public:
  Ladder(int64_t row, int64_t down, int64_t up, int64_t step, int64_t lo, int64_t hi, int64_t cfg_lo, int64_t cfg_hi)
      : row_(row), down_(down), up_(up), step_(step), lo_(lo), hi_(hi), cfg_lo_(cfg_lo), cfg_hi_(cfg_hi) {}

  int32_t next(bool configured_only) override {
    const bool down_ok = down_ >= lo_ && (!configured_only || down_ >= cfg_lo_);
    const bool up_ok = up_ <= hi_ && (!configured_only || up_ <= cfg_hi_);
    if (!down_ok && !up_ok) return -1;
    const bool take_down = down_ok && (!up_ok || row_ - down_ <= up_ - row_);
    int64_t c;
    if (take_down) {
      c = down_;
      down_ -= step_;
    } else {
      c = up_;
      up_ += step_;
    }
    return static_cast<int32_t>(c);
  }

 private:
  int64_t row_, down_, up_, step_, lo_, hi_, cfg_lo_, cfg_hi_;
};

// Several ladders of one pattern (dilated: one per rate; strided: window and multiples; fixed:
// chunk and summary columns), taken in turn so each contributes from its nearest end.
class Interleave final : public CandidateStream {
 public:
  explicit Interleave(std::vector<std::unique_ptr<CandidateStream>> parts) : parts_(std::move(parts)) {}

  int32_t next(bool configured_only) override {
    const size_t n = parts_.size();
    for (size_t i = 0; i < n; ++i) {
      const size_t idx = (cursor_ + i) % n;
      const int32_t c = parts_[idx]->next(configured_only);
      if (c >= 0) {
        last_ = idx;
        cursor_ = (idx + 1) % n;
        return c;
      }
    }
    return -1;
  }
  void accepted() override { parts_[last_]->accepted(); }

 private:
  std::vector<std::unique_ptr<CandidateStream>> parts_;
  size_t cursor_ = 0, last_ = 0;
};

// Uniform draws without replacement from [0, range): a Fisher–Yates shuffle done lazily, the
// swapped positions kept in a small map, so k draws cost O(k) whatever the range. The configured
// pattern is the first `quota` draws that were new to the row; growth keeps drawing.
class RandomDraws final : public CandidateStream {
 public:
  RandomDraws(int64_t range, int64_t quota, uint64_t seed) : range_(range), quota_(quota), gen_(seed) {}

  int32_t next(bool configured_only) override {
    if (configured_only && accepted_ >= quota_) return -1;
    if (drawn_ >= range_) return -1;
    const int64_t j = drawn_ + static_cast<int64_t>(gen_.below(static_cast<uint64_t>(range_ - drawn_)));
    const int64_t vj = at(j);
    swapped_[j] = at(drawn_);  // position drawn_ is never read again
    ++drawn_;
    return static_cast<int32_t>(vj);
  }
  void accepted() override { ++accepted_; }

 private:
  int64_t at(int64_t i) const {
    auto it = swapped_.find(i);
    return it == swapped_.end() ? i : it->second;
  }
  int64_t range_, quota_;
  Generator gen_;
  int64_t drawn_ = 0, accepted_ = 0;
  std::unordered_map<int64_t, int64_t> swapped_;
};

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Nearest-first over the row's whole range: the last-resort fill, and the local pattern.
std::unique_ptr<CandidateStream> nearest(const RowGeometry& g, int64_t cfg_lo, int64_t cfg_hi) {
  return std::make_unique<Ladder>(g.row, g.row - 1, g.row + 1, 1, 0, g.range() - 1, cfg_lo, cfg_hi);
}

std::string join_rates(const std::vector<int64_t>& rates) {
  std::ostringstream os;
  for (size_t i = 0; i < rates.size(); ++i) os << (i ? "," : "") << rates[i];
  return os.str();
}

std::string fmt_num(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

const std::vector<std::string>& known_pattern_names() {
  static const std::vector<std::string> names{"local", "dilated", "strided", "fixed", "global", "random", "bigbird"};
  return names;
}

PatternSet expand_patterns(const PatternConfig& p) {
  SPARROW_CHECK(!p.names.empty(),
                "attention pattern: no pattern names given (known: local, dilated, strided, fixed, "
                "global, random, bigbird)");
  PatternSet s;
  for (const std::string& n : p.names) {
    if (n == "local")
      s.local = true;
    else if (n == "dilated")
      s.dilated = true;
    else if (n == "strided")
      s.strided = true;
    else if (n == "fixed")
      s.fixed = true;
    else if (n == "global")
      s.global = true;
    else if (n == "random")
      s.random = true;
    else if (n == "bigbird")
      s.local = s.global = s.random = true;
    else
      fail("attention pattern: unknown pattern '", n,
           "' (known: local, dilated, strided, fixed, global, random, bigbird)");
  }
  if (s.local || s.dilated) SPARROW_CHECK(p.window >= 0, "attention pattern: window must be >= 0, got ", p.window);
  if (s.dilated) {
    SPARROW_CHECK(!p.dilation_rates.empty(), "attention pattern: dilated needs at least one rate");
    for (int64_t r : p.dilation_rates)
      SPARROW_CHECK(r >= 1, "attention pattern: dilation rates must be >= 1, got ", join_rates(p.dilation_rates));
  }
  if (s.strided || s.fixed) SPARROW_CHECK(p.stride >= 1, "attention pattern: stride must be >= 1, got ", p.stride);
  if (s.global)
    SPARROW_CHECK(p.global_blocks >= 0, "attention pattern: global blocks must be >= 0, got ", p.global_blocks);
  if (s.random)
    SPARROW_CHECK(p.random_blocks >= 0, "attention pattern: random blocks must be >= 0, got ", p.random_blocks);
  return s;
}

uint64_t random_row_seed(uint64_t seed, int64_t head, int64_t row) {
  return splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(head)) ^ static_cast<uint64_t>(row));
}

std::vector<std::unique_ptr<CandidateStream>> make_streams(const PatternSet& set, const PatternConfig& p,
                                                           const RowGeometry& g, int64_t head) {
  std::vector<std::unique_ptr<CandidateStream>> out;
  const int64_t r = g.row, hi = g.range() - 1;
  // A window, rate or stride of nb + 1 blocks or more acts exactly as nb + 1 does (the window
  // covers every block; the rate's or stride's multiples all fall outside the layout), so they
  // are clamped there. With nb < 2^31 that keeps r ± window, window · rate and every ladder
  // step far from int64 overflow (a window near 2^63 used to wrap into a wrong layout).
  const auto clamp = [&](int64_t v) { return std::min(v, g.nb + 1); };
  const int64_t window = clamp(p.window);
  if (set.local) out.push_back(nearest(g, r - window, r + window));
  if (set.dilated) {
    std::vector<std::unique_ptr<CandidateStream>> parts;
    for (int64_t rate_in : p.dilation_rates) {
      const int64_t rate = clamp(rate_in);
      const int64_t reach = window * rate;  // k·rate for k ≤ window
      parts.push_back(std::make_unique<Ladder>(r, r - rate, r + rate, rate, 0, hi, r - reach, r + reach));
    }
    out.push_back(std::make_unique<Interleave>(std::move(parts)));
  }
  if (set.strided) {
    const int64_t l = clamp(p.stride);
    std::vector<std::unique_ptr<CandidateStream>> parts;
    parts.push_back(nearest(g, r - (l - 1), r + (l - 1)));  // |d| < l; growth widens it
    parts.push_back(std::make_unique<Ladder>(r, r - l, r + l, l, 0, hi, -kNoLimit, kNoLimit));  // d ≡ 0 (mod l)
    out.push_back(std::make_unique<Interleave>(std::move(parts)));
  }
  if (set.fixed) {
    const int64_t l = clamp(p.stride);
    const int64_t chunk_lo = (r / l) * l, chunk_hi = chunk_lo + l - 1;
    std::vector<std::unique_ptr<CandidateStream>> parts;
    parts.push_back(nearest(g, chunk_lo, chunk_hi));  // the row's own chunk; growth spills past it
    // Summary columns c ≡ l − 1 (mod l), other than the row itself: the nearest at or below
    // r − 1, and the nearest above r.
    const int64_t down = r - 1 - (((r - 1 - (l - 1)) % l) + l) % l;
    const int64_t up = r + 1 + (((l - 1 - (r + 1)) % l) + l) % l;
    parts.push_back(std::make_unique<Ladder>(r, down, up, l, 0, hi, -kNoLimit, kNoLimit));
    out.push_back(std::make_unique<Interleave>(std::move(parts)));
  }
  if (set.random)
    out.push_back(std::make_unique<RandomDraws>(g.range(), p.random_blocks, random_row_seed(p.seed, head, r)));
  return out;
}

int64_t row_floor(const PatternSet& set, const PatternConfig& p, const RowGeometry& g) {
  if (!set.global) return 1;
  if (g.row < p.global_blocks) return g.range();  // a global query row is dense
  return 1 + std::min(p.global_blocks, g.range());
}

std::vector<int64_t> row_budgets(const PatternSet& set, const PatternConfig& p, int64_t nb, bool causal,
                                 double sparsity) {
  std::vector<int64_t> budgets(nb);
  double carry = 0;  // target − taken over the rows so far that the floor did not bind; |carry| ≤ 1/2
  for (int64_t r = 0; r < nb; ++r) {
    const RowGeometry g{r, nb, causal};
    const double target = (1.0 - sparsity) * static_cast<double>(g.range());
    const int64_t rounded = std::clamp<int64_t>(std::llround(target + carry), 0, g.range());
    const int64_t floor = row_floor(set, p, g);
    if (rounded >= floor) {
      budgets[r] = rounded;
      carry += target - static_cast<double>(rounded);
    } else {
      budgets[r] = floor;
    }
  }
  return budgets;
}

std::vector<int32_t> build_row(const PatternSet& set, const PatternConfig& p, const RowGeometry& g, int64_t head,
                               int64_t budget_blocks, RowScratch& scratch) {
  if (static_cast<int64_t>(scratch.stamp.size()) < g.nb) scratch.stamp.assign(g.nb, -1), scratch.current = 0;
  const int64_t stamp = ++scratch.current;
  int64_t* mark = scratch.stamp.data();
  std::vector<int32_t> out;
  auto add = [&](int64_t c) {
    if (mark[c] == stamp) return false;
    mark[c] = stamp;
    out.push_back(static_cast<int32_t>(c));
    return true;
  };
  const int64_t range = g.range();

  add(g.row);  // the diagonal
  if (set.global) {
    if (g.row < p.global_blocks) {  // a global query row sees every key it may
      out.reserve(range);
      for (int64_t c = 0; c < range; ++c) add(c);
      std::sort(out.begin(), out.end());
      return out;
    }
    for (int64_t c = 0; c < std::min(p.global_blocks, range); ++c) add(c);  // sinks
  }

  auto streams = make_streams(set, p, g, head);
  if (budget_blocks < 0) {
    for (auto& s : streams)
      for (int32_t c; (c = s->next(true)) >= 0;)
        if (add(c)) s->accepted();
  } else {
    const size_t budget = static_cast<size_t>(std::clamp<int64_t>(budget_blocks, 0, range));
    out.reserve(budget);
    // Round-robin: each turn a stream yields candidates until one is new to the row (or it has
    // none left in this phase). Phase 1 the configured patterns, phase 2 their growth.
    for (bool configured_only : {true, false}) {
      for (bool progress = true; progress && out.size() < budget;) {
        progress = false;
        for (auto& s : streams) {
          if (out.size() >= budget) break;
          for (int32_t c; (c = s->next(configured_only)) >= 0;)
            if (add(c)) {
              s->accepted();
              progress = true;
              break;
            }
        }
      }
    }
    // Every pattern ran dry (e.g. only dilated with rates > 1, or only global): nearest first.
    auto fill = nearest(g, -kNoLimit, kNoLimit);
    for (int32_t c; out.size() < budget && (c = fill->next(false)) >= 0;) add(c);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string describe_layout(const AttentionConfig& cfg, bool causal) {
  const PatternConfig& p = cfg.pattern;
  std::ostringstream os;
  for (size_t i = 0; i < p.names.size(); ++i) {
    const std::string& n = p.names[i];
    os << (i ? "+" : "") << n << "(";
    if (n == "local")
      os << "window=" << p.window;
    else if (n == "dilated")
      os << "window=" << p.window << ", rates=" << join_rates(p.dilation_rates);
    else if (n == "strided" || n == "fixed")
      os << "stride=" << p.stride;
    else if (n == "global")
      os << "global=" << p.global_blocks;
    else if (n == "random")
      os << "random=" << p.random_blocks << ", seed=" << p.seed;
    else if (n == "bigbird")
      os << "window=" << p.window << ", global=" << p.global_blocks << ", random=" << p.random_blocks
         << ", seed=" << p.seed;
    os << ")";
  }
  os << ", block " << cfg.block_size;
  if (cfg.sparsity > 0)
    os << " @ sparsity " << cfg.sparsity;
  else
    os << " as configured";
  if (causal) os << ", causal";
  if (p.per_head) os << ", per head";
  return os.str();
}

int64_t layout_blocks(int64_t seq_len, int64_t block_size) {
  return seq_len / block_size + (seq_len % block_size != 0 ? 1 : 0);
}

double estimate_active_blocks(const AttentionConfig& cfg, int64_t seq_len, int64_t num_heads, bool causal) {
  const PatternSet set = expand_patterns(cfg.pattern);
  const PatternConfig& p = cfg.pattern;
  const double nb = static_cast<double>(layout_blocks(seq_len, cfg.block_size));
  const double dense = causal ? nb * (nb + 1) / 2 : nb * nb;
  // Per row: the diagonal, the sinks and what each configured pattern adds at most; every
  // parameter is taken as a double so nothing wraps whatever its size.
  const double w = static_cast<double>(p.window), l = static_cast<double>(p.stride);
  const double g = set.global ? std::min(static_cast<double>(p.global_blocks), nb) : 0.0;
  double row = 1 + g;
  if (set.local) row += 2 * w + 1;
  if (set.dilated) row += 2 * w * static_cast<double>(p.dilation_rates.size());
  if (set.strided) row += 2 * l + 2 * nb / l;
  if (set.fixed) row += l + 2 * nb / l;
  if (set.random) row += static_cast<double>(p.random_blocks);
  double active = std::min(dense, nb * std::min(row, nb) + g * nb);  // g global rows are dense
  if (cfg.sparsity > 0) active = std::min(dense, (1.0 - cfg.sparsity) * dense + nb * (1 + g) + g * nb);
  const double stored = (p.per_head && set.random) ? static_cast<double>(num_heads) : 1.0;
  return active * stored;
}

BlockLayout build_layout(const AttentionConfig& cfg, int64_t seq_len, int64_t num_heads, bool causal) {
  SPARROW_CHECK(seq_len > 0, "attention layout: sequence length must be > 0, got ", seq_len);
  SPARROW_CHECK(num_heads >= 1, "attention layout: heads must be >= 1, got ", num_heads);
  SPARROW_CHECK(cfg.block_size > 0, "attention layout: block size must be > 0, got ", cfg.block_size);
  SPARROW_CHECK(std::isfinite(cfg.sparsity) && cfg.sparsity >= 0.0 && cfg.sparsity < 1.0,
                "attention layout: sparsity must be in [0, 1), got ", cfg.sparsity);
  const PatternSet set = expand_patterns(cfg.pattern);
  const int64_t nb = layout_blocks(seq_len, cfg.block_size);
  SPARROW_CHECK(nb <= std::numeric_limits<int32_t>::max(), "attention layout: ", nb, " blocks exceed int32 indices");

  BlockLayout L;
  L.seq_len = L.key_len = seq_len;
  L.block_size = cfg.block_size;
  L.num_q_blocks = L.num_k_blocks = nb;
  L.causal = causal;
  L.target_sparsity = cfg.sparsity;
  L.description = describe_layout(cfg, causal);

  // Only the random part depends on the head; without it every head's layout is the same.
  const int64_t stored = (cfg.pattern.per_head && set.random) ? num_heads : 1;
  const bool budgeted = cfg.sparsity > 0;
  const std::vector<int64_t> budgets =
      budgeted ? row_budgets(set, cfg.pattern, nb, causal, cfg.sparsity) : std::vector<int64_t>(nb, -1);
  L.heads.resize(stored);
  for (int64_t h = 0; h < stored; ++h) {
    std::vector<std::vector<int32_t>> rows(nb);
#pragma omp parallel if (nb >= 1024)  // small layouts: thread start-up costs more than the rows
    {
      RowScratch scratch;
#pragma omp for schedule(dynamic, 64)
      for (int64_t r = 0; r < nb; ++r)
        rows[r] = build_row(set, cfg.pattern, RowGeometry{r, nb, causal}, h, budgets[r], scratch);
    }
    BlockCSR& csr = L.heads[h];
    csr.row_ptr.resize(nb + 1);
    csr.row_ptr[0] = 0;
    for (int64_t r = 0; r < nb; ++r) csr.row_ptr[r + 1] = csr.row_ptr[r] + static_cast<int64_t>(rows[r].size());
    csr.col_idx.resize(csr.row_ptr[nb]);
    for (int64_t r = 0; r < nb; ++r) {
      std::copy(rows[r].begin(), rows[r].end(), csr.col_idx.begin() + csr.row_ptr[r]);
      std::vector<int32_t>().swap(rows[r]);
    }
    csr.build_transpose(nb);
  }

  if (budgeted) {
    // The floor binds where a row's diagonal and sinks outnumber its share, i.e. at short
    // lengths (and a causal layout's first rows). Rounding moves the total by under half a block,
    // so once the floors add more than half a block per row the realised sparsity visibly misses
    // the target: say so, with the numbers. (Dense global rows are part of the pattern, not the
    // floor: they count in `realised` but do not raise the note.)
    const int64_t dense_rows = set.global ? cfg.pattern.global_blocks : 0;
    double target = 0, floor_excess = 0;
    int64_t active = 0;
    for (int64_t r = 0; r < nb; ++r) {
      const RowGeometry g{r, nb, causal};
      const double t = (1.0 - cfg.sparsity) * static_cast<double>(g.range());
      target += t;
      active += budgets[r];
      if (r >= dense_rows && budgets[r] == row_floor(set, cfg.pattern, g) && static_cast<double>(budgets[r]) > t)
        floor_excess += static_cast<double>(budgets[r]) - t;
    }
    if (floor_excess > 0.5 * static_cast<double>(nb)) {
      const int64_t sinks = set.global ? std::min(cfg.pattern.global_blocks, nb - 1) : 0;
      std::ostringstream os;
      os << "target sparsity " << cfg.sparsity << " needs ≤ " << fmt_num("%.3g", target / static_cast<double>(nb))
         << " blocks per row but the diagonal";
      if (sinks > 0) os << " and " << sinks << " sink block" << (sinks == 1 ? "" : "s");
      os << " give " << (1 + sinks);
      if (sinks > 0 && !causal)
        os << " (and the " << sinks << " global row" << (sinks == 1 ? " is" : "s are") << " dense)";
      os << ": realised " << fmt_num("%.3g", 1.0 - static_cast<double>(active) / static_cast<double>(L.dense_blocks()));
      L.floor_note = os.str();
    }
  }
  return L;
}

}  // namespace sparrow::attn
