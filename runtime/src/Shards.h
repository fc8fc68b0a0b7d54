// Shards.h - data-parallel training steps (a program netc --distributed
// links), bitwise equal whatever the number of processes.
//
// Every batch of n examples is cut into S shards (--shards, the same for
// every process count): shard s holds the batch's examples
// [s*n/S, (s+1)*n/S). Of P processes, rank r computes shards
// [r*S/P, (r+1)*S/P), each with the generated shard_gradients into its own
// row of partial gradients (the loss after them). The batch's gradient is
// then, element by element, ((g_0 + g_1) + g_2) + ... + g_{S-1}: a fixed
// order that no process count changes, so the update (apply_update) and
// the weights are the same bits with 1, 2 or 3 processes.
//
// A Group is the processes training together. LocalGroup is one process:
// it adds its rows in order. The MPI group (runtime/mpi) cuts the vector
// into one segment per rank, sends every rank its segment of each of its
// shards' rows (an all-to-all), adds the S rows of its own segment in shard
// order - the same additions - and gathers the segments to every rank.
// Buckets of parameters are exchanged as soon as the last shard's backward
// pass has handed them over (shard_gradients' ready callback), while the
// earlier layers' backward pass still runs.
#pragma once

#include "ModelInfo.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace netc::rt {

/// out[i] = ((rows[0][i] + rows[1][i]) + ...) for i < length, rows `stride`
/// floats apart: the one sum of shards every group uses.
void foldShards(const float *rows, int64_t stride, int64_t count, float *out, int64_t length);

/// The processes training one model together.
class Group {
public:
  virtual ~Group() = default;
  virtual int rank() const { return 0; }
  virtual int size() const { return 1; }

  /// A new step's exchange: `local` rows of `stride` floats at `rows` (this
  /// rank's shards, in order) will hold `length` floats each, to be summed
  /// into `sum`; parameter p's gradient is floats [paramBegin[p],
  /// paramEnd[p]).
  virtual void begin(float *rows, int64_t stride, int64_t local, int64_t length, float *sum) {
    rows_ = rows;
    stride_ = stride;
    local_ = local;
    length_ = length;
    sum_ = sum;
  }
  /// Parameter p's gradient is in every local row (called during the last
  /// local shard's backward pass).
  virtual void ready(int32_t) {}
  /// Waits for the exchange: then `sum` holds the sums of all S rows, in
  /// shard order.
  virtual void finish() { foldShards(rows_, stride_, local_, sum_, length_); }

  /// True on every rank if `flag` is true on any (a stop every rank takes
  /// at the same step).
  virtual bool any(bool flag) { return flag; }
  /// The first rank (by number) whose `flag` is true, or -1.
  virtual int firstWith(bool flag) { return flag ? 0 : -1; }
  /// Ends every process of the group (a rank cannot go on alone).
  [[noreturn]] virtual void abort(int code);
  /// On a rank other than 0 that met a CommonError: waits for rank 0, which
  /// met it too, to report it and end the group; returns if that does not
  /// happen in time (then this rank reports and ends it).
  virtual void awaitAbort() {}

  /// Where each parameter's gradient lies in the vector (set by the
  /// trainer before the first step; buckets are made of them).
  std::vector<int64_t> paramBegin, paramEnd;

protected:
  float *rows_ = nullptr, *sum_ = nullptr;
  int64_t stride_ = 0, local_ = 0, length_ = 0;
};

/// The default number of shards: 1, 2, 3 and 6 processes share it evenly.
/// Each shard costs a pass over the gradients (written, then added): on the
/// MNIST MLP one process takes 0.04 s an epoch with 1 shard, 0.06 s with 6
/// and 0.09 s with 12 (train_step: 0.03 s). More processes need more.
constexpr int64_t kDefaultShards = 6;

/// A training step on shards, for a model netc compiled with --distributed.
class ShardedStep {
public:
  ShardedStep(const ModelInfo &m, Group &group, int64_t shards);

  int64_t shards() const { return shards_; }
  /// This rank's examples of a batch of n: [first, first + count).
  int64_t firstRow(int64_t n) const { return rowOf(firstShard_, n); }
  int64_t rowCount(int64_t n) const { return rowOf(lastShard_, n) - rowOf(firstShard_, n); }

  /// One step on a batch of n examples, of which `inputs` holds rows from
  /// `inputsFirst` on (at least this rank's: rowCount(n) from
  /// firstRow(n)); hparams as train_step's (each shard's dropout key is
  /// derived from its key). Returns the loss; `stopAll` is whether `stop`
  /// was true on any rank (exchanged with the gradients: every rank stops
  /// after the same step).
  float step(float *persist, const float *const *inputs, int64_t inputsFirst, char *scratch,
             int64_t n, const float *hparams, bool stop, bool &stopAll);

  /// Seconds this process spent since the last reset: in shard_gradients,
  /// waiting for the exchange after its last shard (the part communication
  /// did not overlap), and in apply_update.
  struct Timings {
    double compute = 0, exchange = 0, update = 0;
    int64_t steps = 0;
  };
  Timings takeTimings() { return std::exchange(timings_, Timings{}); }

private:
  int64_t rowOf(int64_t shard, int64_t n) const { return shard * n / shards_; }

  Timings timings_;

  const ModelInfo &m_;
  Group &group_;
  int64_t shards_, firstShard_, lastShard_;
  int64_t length_, stride_; ///< gradient floats, the loss, a stop flag; row stride
  std::vector<float> rows_, sum_, hparams_;
  std::vector<const float *> inputs_;
  std::vector<int> keySlots_; ///< dropout's key hparams, if any
};

/// The emitted program's main (netc_main) for a group of processes.
int trainerMain(const netc_model *model, int argc, char **argv, Group &group);

} // namespace netc::rt
