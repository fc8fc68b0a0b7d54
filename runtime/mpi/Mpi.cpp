// Mpi.cpp - netc_main_distributed: a --distributed program's main, the
// processes of `mpirun -np N` as one Group (Shards.h).
//
// The exchange of a step, per bucket of parameters (a contiguous range of
// the gradient vector, made of whole parameters, ~kBucketBytes): the range
// is cut into one segment per rank; every rank sends every other its
// segment of each of its shard rows (an all-to-all); each rank adds the S
// rows of its segment in shard order (foldShards, the additions one
// process makes) and sends the sum to every other (an all-gather). Traffic
// per rank and bucket of B bytes: about (S/N)·B out and in, then B.
//
// Both halves are non-blocking point-to-point messages tagged by bucket and
// half (Open MPI 4.1's non-blocking collectives, libnbc, crashed in
// MPI_Wait here with several outstanding at once). Buckets start as soon as
// the last local shard has handed over their parameters (shard_gradients'
// ready callback, during its backward pass), in one fixed order, the order
// backward completes them. Open MPI moves messages only inside MPI calls,
// so each callback also tests the oldest pending bucket.
//
// Alone (no mpirun in the environment) the program runs as one process
// without initialising MPI; its weights are the same bits as under mpirun
// with any number of processes.
#include "Shards.h"

// MPI's C API alone (Open MPI's mpi.h would pull in its C++ bindings).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace netc::rt {

namespace {

/// Buckets hold about this many bytes of gradients (PyTorch's DDP: 25 MB;
/// smaller here, for the small models of the course: a bucket is sent while
/// the layers before it still run their backward pass).
constexpr int64_t kBucketBytes = 256 << 10;

/// How long a rank waits for rank 0 to report an error both met
/// (Group::awaitAbort): rank 0 may still be reading its data.
constexpr int kAwaitAbortSeconds = 60;

[[noreturn]] void mpiFailed(int code, const char *what) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error(std::string(what) + " failed: " + std::string(text, static_cast<size_t>(length)) +
              " (did another process die?)");
}

void check(int code, const char *what) {
  if (code != MPI_SUCCESS)
    mpiFailed(code, what);
}

class MpiGroup final : public Group {
public:
  explicit MpiGroup(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm, &rank_);
    MPI_Comm_size(comm, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void begin(float *rows, int64_t stride, int64_t local, int64_t length, float *sum) override {
    bool first = buckets_.empty();
    Group::begin(rows, stride, local, length, sum);
    if (first)
      plan();
    for (Bucket &b : buckets_)
      b.waiting = b.params > 0 ? b.params : 1; // the tail: when finish() comes
    nextStart_ = nextGather_ = 0;
  }

  void ready(int32_t param) override {
    Bucket &b = buckets_[static_cast<size_t>(bucketOf_[static_cast<size_t>(param)])];
    b.waiting -= 1;
    startReady();
    advance(/*wait=*/false);
  }

  void finish() override {
    for (Bucket &b : buckets_) // whatever is left, with the loss and stop flag
      b.waiting = 0;
    startReady();
    while (nextGather_ < buckets_.size())
      advance(/*wait=*/true);
    for (Bucket &b : buckets_)
      check(
          MPI_Waitall(static_cast<int>(b.requests.size()), b.requests.data(), MPI_STATUSES_IGNORE),
          "the all-gather of the gradients");
  }

  bool any(bool flag) override {
    int in = flag ? 1 : 0, out = 0;
    check(MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, comm_), "an all-reduce");
    return out != 0;
  }

  int firstWith(bool flag) override {
    int in = flag ? rank_ : INT_MAX, out = INT_MAX;
    check(MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MIN, comm_), "an all-reduce");
    return out == INT_MAX ? -1 : out;
  }

  [[noreturn]] void abort(int code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(comm_, code);
    std::exit(code);
  }

  void awaitAbort() override {
    // Rank 0's MPI_Abort ends this process while it sleeps.
    for (int i = 0; i < kAwaitAbortSeconds * 10; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

private:
  struct Bucket {
    int64_t lo = 0, hi = 0; ///< floats of the vector
    int params = 0, waiting = 0;
    std::vector<MPI_Request> requests; ///< of the half in progress
    std::vector<float> send, receive;
    std::vector<int> sendCounts, sendOffsets, receiveCounts, receiveOffsets;
    std::vector<int> gatherCounts, gatherOffsets;
  };

  /// Rank r's segment of [lo, hi).
  int64_t cut(const Bucket &b, int r) const { return b.lo + (b.hi - b.lo) * r / size_; }

  /// Buckets from the last parameter back (the order backward completes
  /// them), then one for the rest of the vector: the loss, the stop flag.
  void plan() {
    std::vector<size_t> order(paramBegin.size());
    for (size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return paramBegin[a] > paramBegin[b]; });
    bucketOf_.assign(order.size(), 0);
    int64_t gradientsEnd = 0;
    for (size_t p = 0; p < order.size(); ++p)
      gradientsEnd = std::max(gradientsEnd, paramEnd[p]);
    int64_t hi = gradientsEnd;
    Bucket current;
    for (size_t p : order) {
      if (current.params == 0)
        current.hi = hi;
      current.lo = paramBegin[p];
      current.params += 1;
      bucketOf_[p] = static_cast<int>(buckets_.size());
      if ((current.hi - current.lo) * 4 >= kBucketBytes) {
        hi = current.lo;
        buckets_.push_back(std::move(current));
        current = Bucket{};
      }
    }
    if (current.params > 0) {
      current.lo = 0;
      buckets_.push_back(std::move(current));
    } else if (!buckets_.empty()) {
      buckets_.back().lo = 0;
    }
    Bucket tail;
    tail.lo = gradientsEnd;
    tail.hi = length_;
    buckets_.push_back(std::move(tail));
    std::vector<int> locals(static_cast<size_t>(size_)); // every rank's shard count
    int local = static_cast<int>(local_);
    check(MPI_Allgather(&local, 1, MPI_INT, locals.data(), 1, MPI_INT, comm_),
          "an all-gather of the shard counts");
    for (Bucket &b : buckets_)
      allocate(b, locals);
  }

  /// Counts and offsets of the all-to-all and the all-gather; rank i holds
  /// shards [i*S/N, (i+1)*S/N) of S = the sum of every rank's local count.
  void allocate(Bucket &b, const std::vector<int> &locals) {
    int local = static_cast<int>(local_);
    int64_t mine = cut(b, rank_ + 1) - cut(b, rank_);
    int sent = 0, received = 0;
    for (int r = 0; r < size_; ++r) {
      auto width = static_cast<int>(cut(b, r + 1) - cut(b, r));
      b.sendCounts.push_back(local * width);
      b.sendOffsets.push_back(sent);
      sent += local * width;
      b.receiveCounts.push_back(locals[static_cast<size_t>(r)] * static_cast<int>(mine));
      b.receiveOffsets.push_back(received);
      received += locals[static_cast<size_t>(r)] * static_cast<int>(mine);
      b.gatherCounts.push_back(width);
      b.gatherOffsets.push_back(static_cast<int>(cut(b, r) - b.lo));
    }
    b.send.resize(static_cast<size_t>(std::max(sent, 1)));
    b.receive.resize(static_cast<size_t>(std::max(received, 1)));
  }

  /// Starts the exchanges of the ready buckets, in bucket order.
  void startReady() {
    while (nextStart_ < buckets_.size() && buckets_[nextStart_].waiting <= 0) {
      size_t index = nextStart_++;
      Bucket &b = buckets_[index];
      float *out = b.send.data();
      for (int r = 0; r < size_; ++r)
        for (int64_t j = 0; j < local_; ++j) {
          const float *row = rows_ + j * stride_;
          out = std::copy(row + cut(b, r), row + cut(b, r + 1), out);
        }
      auto at = [](std::vector<float> &v, const std::vector<int> &offsets, int r) {
        return v.data() + offsets[static_cast<size_t>(r)];
      };
      b.requests.clear();
      for (int r = 0; r < size_; ++r) {
        auto i = static_cast<size_t>(r);
        if (r == rank_) {
          std::copy(at(b.send, b.sendOffsets, r), at(b.send, b.sendOffsets, r) + b.sendCounts[i],
                    at(b.receive, b.receiveOffsets, r));
          continue;
        }
        b.requests.emplace_back();
        check(MPI_Irecv(at(b.receive, b.receiveOffsets, r), b.receiveCounts[i], MPI_FLOAT, r,
                        tag(index, 0), comm_, &b.requests.back()),
              "receiving gradients");
        b.requests.emplace_back();
        check(MPI_Isend(at(b.send, b.sendOffsets, r), b.sendCounts[i], MPI_FLOAT, r, tag(index, 0),
                        comm_, &b.requests.back()),
              "sending gradients");
      }
    }
  }

  static int tag(size_t bucket, int half) { return static_cast<int>(bucket) * 2 + half; }

  /// The oldest exchanged bucket, once its data is here: its segment summed
  /// in shard order, and gathered. `wait`: block until it is.
  void advance(bool wait) {
    while (nextGather_ < nextStart_) {
      Bucket &b = buckets_[nextGather_];
      int done = 0;
      auto count = static_cast<int>(b.requests.size());
      if (wait)
        check(MPI_Waitall(count, b.requests.data(), MPI_STATUSES_IGNORE),
              "the all-to-all of the gradients");
      else
        check(MPI_Testall(count, b.requests.data(), &done, MPI_STATUSES_IGNORE),
              "the all-to-all of the gradients");
      if (!wait && !done)
        return;
      int64_t width = cut(b, rank_ + 1) - cut(b, rank_);
      int64_t rows = 0;
      for (int r = 0; r < size_; ++r)
        rows += b.receiveCounts[static_cast<size_t>(r)];
      rows = width > 0 ? rows / width : 0;
      if (width > 0)
        foldShards(b.receive.data(), width, rows, sum_ + cut(b, rank_), width);
      b.requests.clear();
      for (int r = 0; r < size_; ++r) {
        if (r == rank_)
          continue;
        auto i = static_cast<size_t>(r);
        b.requests.emplace_back();
        check(MPI_Irecv(sum_ + b.lo + b.gatherOffsets[i], b.gatherCounts[i], MPI_FLOAT, r,
                        tag(nextGather_, 1), comm_, &b.requests.back()),
              "receiving summed gradients");
        b.requests.emplace_back();
        check(MPI_Isend(sum_ + cut(b, rank_), static_cast<int>(width), MPI_FLOAT, r,
                        tag(nextGather_, 1), comm_, &b.requests.back()),
              "sending summed gradients");
      }
      ++nextGather_;
    }
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::vector<Bucket> buckets_;
  std::vector<int> bucketOf_;
  size_t nextStart_ = 0, nextGather_ = 0;
};

/// Started by mpirun (Open MPI, or a PMI launcher such as srun or hydra).
bool underMpirun() {
  for (const char *name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(name))
      return true;
  return false;
}

} // namespace

} // namespace netc::rt

extern "C" int netc_main_distributed(const netc_model *model, int argc, char **argv) {
  using namespace netc::rt;
  if (!underMpirun()) {
    Group alone;
    return trainerMain(model, argc, argv, alone);
  }
  int provided = 0;
  // Only the main thread calls MPI (the kernels' threads never do).
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "error: MPI_Init failed\n");
    return 1;
  }
  // Errors come back as codes, reported with the rank (check above).
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rank > 0 && !std::freopen("/dev/null", "w", stdout)) // rank 0 alone prints
    std::fclose(stdout);
  int status;
  if (size == 1) {
    Group alone;
    status = trainerMain(model, argc, argv, alone);
  } else {
    MpiGroup group(MPI_COMM_WORLD);
    status = trainerMain(model, argc, argv, group);
  }
  std::fflush(stdout);
  // No rank leaves before rank 0 has written its files: mpirun ends the
  // whole job as soon as one process exits with a non-zero status (as
  // after a stop signal).
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Finalize();
  return status;
}
