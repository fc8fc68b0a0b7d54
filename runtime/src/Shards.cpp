// Shards.cpp - the sharded training step and the one-process group (Shards.h).
#include "Shards.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace netc::rt {

void foldShards(const float *rows, int64_t stride, int64_t count, float *out, int64_t length) {
  // One rounding per addition, in shard order (no contraction can apply:
  // there is no product), in blocks that stay in the L1 cache while every
  // row is added. The rows come from memory: six rows of the MNIST MLP (4.9
  // MB) take 0.32 ms here, a third of a one-process step.
  // Rows and out never overlap (restrict: vectorized without alias checks).
  constexpr int64_t kBlock = 2048;
  for (int64_t begin = 0; begin < length; begin += kBlock) {
    int64_t width = std::min(length - begin, kBlock);
    float *__restrict sum = out + begin;
    const float *__restrict first = rows + begin;
    for (int64_t i = 0; i < width; ++i)
      sum[i] = first[i];
    for (int64_t s = 1; s < count; ++s) {
      const float *__restrict row = rows + s * stride + begin;
      for (int64_t i = 0; i < width; ++i)
        sum[i] += row[i];
    }
  }
}

void Group::abort(int code) { std::exit(code); }

namespace {

/// shard_gradients' callback: this rank's last shard handed parameter p over.
extern "C" void onReady(void *group, int32_t param) { static_cast<Group *>(group)->ready(param); }

} // namespace

ShardedStep::ShardedStep(const ModelInfo &m, Group &group, int64_t shards)
    : m_(m), group_(group), shards_(shards) {
  if (!m.code->shard_gradients || !m.code->apply_update)
    throw CommonError("this program was not compiled with netc --distributed");
  int64_t ranks = group.size();
  if (shards < ranks)
    throw CommonError("--shards " + std::to_string(shards) + " is fewer than the " +
                      std::to_string(ranks) +
                      " processes: each needs a shard (the weights depend on --shards, not on the "
                      "number of processes); give --shards " +
                      std::to_string(ranks) + " or more");
  firstShard_ = group.rank() * shards / ranks;
  lastShard_ = (group.rank() + 1) * shards / ranks;
  int64_t gradients = 0;
  group.paramBegin.clear();
  group.paramEnd.clear();
  for (const TensorInfo &p : m.params) {
    group.paramBegin.push_back(p.offset);
    group.paramEnd.push_back(p.offset + p.numel());
    gradients = std::max(gradients, p.offset + p.numel());
  }
  length_ = gradients + 2; // the loss, then the stop flag
  stride_ = (length_ + 15) / 16 * 16;
  rows_.assign(static_cast<size_t>(stride_ * (lastShard_ - firstShard_)), 0.0f);
  sum_.assign(static_cast<size_t>(stride_), 0.0f);
  hparams_.assign(static_cast<size_t>(m.hparamCount + 1), 0.0f);
  inputs_.assign(static_cast<size_t>(m.code->field_count), nullptr);
  for (int32_t i = 0; i < m.code->hparam_count; ++i)
    if (m.code->hparams[i].kind == NETC_HPARAM_KEY_LOW ||
        m.code->hparams[i].kind == NETC_HPARAM_KEY_HIGH)
      keySlots_.push_back(i);
}

float ShardedStep::step(float *persist, const float *const *inputs, int64_t inputsFirst,
                        char *scratch, int64_t n, const float *hparams, bool stop, bool &stopAll) {
  std::copy(hparams, hparams + m_.hparamCount, hparams_.begin());
  hparams_[static_cast<size_t>(m_.hparamCount)] = static_cast<float>(n); // the batch's size
  uint64_t key = 0;
  if (keySlots_.size() == 2) // 24 bits each, low first (runtime.h)
    key = static_cast<uint64_t>(hparams[keySlots_[0]]) |
          static_cast<uint64_t>(hparams[keySlots_[1]]) << 24;
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
  };
  auto start = Clock::now();
  int64_t local = lastShard_ - firstShard_;
  group_.begin(rows_.data(), stride_, local, length_, sum_.data());
  int64_t first = inputsFirst;
  for (int64_t s = firstShard_; s < lastShard_; ++s) {
    float *row = rows_.data() + (s - firstShard_) * stride_;
    int64_t begin = rowOf(s, n), count = rowOf(s + 1, n) - begin;
    if (keySlots_.size() == 2) { // each shard its own dropout masks
      uint64_t k = netc_mix64(key ^ (static_cast<uint64_t>(s) + 1) * 0x9E3779B97F4A7C15ull) &
                   ((1ull << 48) - 1);
      hparams_[static_cast<size_t>(keySlots_[0])] = static_cast<float>(k & 0xFFFFFF);
      hparams_[static_cast<size_t>(keySlots_[1])] = static_cast<float>(k >> 24);
    }
    bool last = s + 1 == lastShard_;
    if (count == 0) { // a batch smaller than the shard count: nothing here
      std::fill(row, row + length_, 0.0f);
      row[length_ - 1] = s == firstShard_ && stop ? 1.0f : 0.0f;
      if (last)
        for (size_t p = 0; p < m_.params.size(); ++p)
          group_.ready(static_cast<int32_t>(p));
      continue;
    }
    for (int32_t f = 0; f < m_.code->field_count; ++f) {
      const netc_field &field = m_.code->fields[f];
      int64_t offset = (begin - first) * field.example_floats;
      inputs_[static_cast<size_t>(f)] =
          field.integer ? reinterpret_cast<const float *>(
                              reinterpret_cast<const int64_t *>(inputs[f]) + offset)
                        : inputs[f] + offset;
    }
    row[length_ - 2] =
        m_.code->shard_gradients(persist, inputs_.data(), scratch, count, hparams_.data(), row,
                                 last ? onReady : nullptr, last ? &group_ : nullptr);
    row[length_ - 1] = s == firstShard_ && stop ? 1.0f : 0.0f;
  }
  auto computed = Clock::now();
  group_.finish();
  auto exchanged = Clock::now();
  stopAll = sum_[static_cast<size_t>(length_ - 1)] > 0;
  m_.code->apply_update(persist, sum_.data(), scratch, hparams);
  auto updated = Clock::now();
  timings_.compute += seconds(start, computed);
  timings_.exchange += seconds(computed, exchanged);
  timings_.update += seconds(exchanged, updated);
  timings_.steps += 1;
  return sum_[static_cast<size_t>(length_ - 2)];
}

} // namespace netc::rt
