// Recompute.cpp - see Recompute.h.
#include "compiler/transforms/Recompute.h"
#include "compiler/transforms/Simplify.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

namespace netc {

namespace {

bool cheap(Op op) {
  switch (op) {
  case Op::Add:
  case Op::Sub:
  case Op::Mul:
  case Op::Neg:
  case Op::Relu:
  case Op::Step:
    return true;
  default:
    return false;
  }
}

/// The most nodes recomputed for one value: a few ops per element cost
/// less than a store and a load of it (batch norm's longest is 2), a long
/// chain (a sum of a thousand terms, split into kernels) would be copied
/// whole into the next kernel.
constexpr size_t kMaxChain = 4;

/// A value to recompute: the nodes that compute it from memory (its
/// register operands first, itself last) and its readers in later kernels.
struct Candidate {
  std::vector<ValueId> chain;
  std::vector<ValueId> readers;
};

class Recomputer {
public:
  Recomputer(const Graph &g, const Schedule &s) : g_(g), s_(s), users_(g.size()) {
    for (size_t u = 0; u < g.size(); ++u)
      for (ValueId v : g.node(static_cast<ValueId>(u)).inputs)
        users_[static_cast<size_t>(v)].push_back(static_cast<ValueId>(u));
    for (size_t i = 0; i < g.size(); ++i)
      if (g.node(static_cast<ValueId>(i)).op == Op::Assign)
        assigns_[base(g.node(static_cast<ValueId>(i)).inputs[0])].push_back(
            static_cast<ValueId>(i));
    for (const auto &o : g.outputs)
      outputs_.insert(o.value);
  }

  /// The candidates, by value.
  std::map<ValueId, Candidate> find() const {
    std::map<ValueId, Candidate> found;
    for (size_t i = 0; i < g_.size(); ++i)
      if (auto c = candidate(static_cast<ValueId>(i)))
        found[static_cast<ValueId>(i)] = std::move(*c);
    return found;
  }

private:
  int kernelOf(ValueId v) const { return s_.kernelOf[static_cast<size_t>(v)]; }
  bool stored(ValueId v) const { return s_.materialized[static_cast<size_t>(v)]; }

  /// What a reshape (a view) aliases.
  ValueId base(ValueId v) const {
    while (g_.node(v).op == Op::Reshape)
      v = g_.node(v).inputs[0];
    return v;
  }

  std::optional<Candidate> candidate(ValueId v) const {
    const Node &n = g_.node(v);
    int k = kernelOf(v);
    if (k < 0 || !cheap(n.op) || !stored(v) || outputs_.count(v))
      return std::nullopt;
    const Kernel &kernel = s_.kernels[static_cast<size_t>(k)];
    if (kernel.kind != Kernel::Kind::Loop || !(n.shape == kernel.domain) || !bigTensor(n.shape))
      return std::nullopt;
    Candidate c;
    for (ValueId u : users_[static_cast<size_t>(v)]) {
      if (kernelOf(u) == k)
        continue;
      const Kernel &reader = s_.kernels[static_cast<size_t>(kernelOf(u))];
      // A loop, or one fused into a window kernel (Fuse.h: fusedLoop).
      bool loop = reader.kind == Kernel::Kind::Loop && reader.domain == kernel.domain;
      bool fused =
          fusedLoop(g_, reader) != 0 && u != reader.nodes.front() && g_.shape(u) == kernel.domain;
      if (!(loop || fused) || g_.node(u).op == Op::Assign)
        return std::nullopt;
      if (c.readers.empty() || c.readers.back() != u) // users: once per operand
        c.readers.push_back(u);
    }
    if (c.readers.empty())
      return std::nullopt;
    std::set<ValueId> leaves, big;
    if (!collect(v, k, c.chain, leaves, big) || big.size() > 1 || c.chain.size() > kMaxChain)
      return std::nullopt;
    // Read later, a leaf must still hold what it held at v.
    ValueId last = c.readers.back();
    for (ValueId leaf : leaves) {
      auto it = assigns_.find(base(leaf));
      if (it != assigns_.end() && std::any_of(it->second.begin(), it->second.end(),
                                              [&](ValueId a) { return a > v && a < last; }))
        return std::nullopt;
    }
    return c;
  }

  /// v's register operands in kernel k (in `chain`, operands first) and the
  /// values in memory they read (`leaves`; those of the kernel's shape also
  /// in `big`). False if v reads anything else.
  bool collect(ValueId v, int k, std::vector<ValueId> &chain, std::set<ValueId> &leaves,
               std::set<ValueId> &big) const {
    const Shape &domain = s_.kernels[static_cast<size_t>(k)].domain;
    for (ValueId x : g_.node(v).inputs) {
      const Node &in = g_.node(x);
      if (isInlineLeaf(in.op))
        continue;
      if (stored(x)) {
        leaves.insert(x);
        if (in.shape == domain)
          big.insert(x);
        continue;
      }
      if (kernelOf(x) != k || !cheap(in.op) || !(in.shape == domain))
        return false;
      if (std::find(chain.begin(), chain.end(), x) == chain.end() &&
          !collect(x, k, chain, leaves, big))
        return false;
    }
    chain.push_back(v);
    return true;
  }

  const Graph &g_;
  const Schedule &s_;
  std::vector<std::vector<ValueId>> users_;
  std::map<ValueId, std::vector<ValueId>> assigns_; ///< by target (a reshape's base)
  std::set<ValueId> outputs_;
};

/// `g` with each candidate's chain copied right before each of its
/// readers, which read the copy; `sunk` marks the copies (and keeps the
/// marks of the nodes copied from `g`).
Graph rewrite(const Graph &g, const std::map<ValueId, Candidate> &candidates,
              std::vector<bool> &sunk) {
  std::map<ValueId, std::vector<ValueId>> readsOf; // reader -> candidates it reads
  for (const auto &[v, c] : candidates)
    for (ValueId u : c.readers)
      readsOf[u].push_back(v);
  Graph out;
  std::vector<ValueId> map(g.size(), kNoValue);
  std::vector<bool> marks;
  auto mark = [&](ValueId id, bool on) {
    marks.resize(static_cast<size_t>(id) + 1, false);
    marks[static_cast<size_t>(id)] = on;
  };
  for (size_t i = 0; i < g.size(); ++i) {
    auto id = static_cast<ValueId>(i);
    std::vector<ValueId> inputs;
    for (ValueId v : g.node(id).inputs)
      inputs.push_back(map[static_cast<size_t>(v)]);
    if (auto reads = readsOf.find(id); reads != readsOf.end()) {
      std::map<ValueId, ValueId> copies; // this reader's: original -> copy
      for (ValueId v : reads->second)
        for (ValueId x : candidates.at(v).chain) {
          if (copies.count(x))
            continue;
          std::vector<ValueId> in;
          for (ValueId w : g.node(x).inputs)
            in.push_back(copies.count(w) ? copies[w] : map[static_cast<size_t>(w)]);
          copies[x] = out.copy(g.node(x), std::move(in));
          mark(copies[x], true);
        }
      const auto &operands = g.node(id).inputs;
      const std::vector<ValueId> &read = reads->second;
      for (size_t j = 0; j < operands.size(); ++j)
        if (std::find(read.begin(), read.end(), operands[j]) != read.end())
          inputs[j] = copies.at(operands[j]);
    }
    map[i] = out.copy(g.node(id), std::move(inputs));
    mark(map[i], i < sunk.size() && sunk[i]);
  }
  for (const auto &o : g.outputs)
    out.outputs.push_back({o.name, map[static_cast<size_t>(o.value)]});
  for (ValueId e : g.effects)
    out.effects.push_back(map[static_cast<size_t>(e)]);
  // The originals nothing reads any more go.
  std::vector<ValueId> renumbered;
  Graph live = removeDeadNodes(out, &renumbered);
  sunk.assign(live.size(), false);
  for (size_t i = 0; i < renumbered.size(); ++i)
    if (renumbered[i] != kNoValue && i < marks.size())
      sunk[static_cast<size_t>(renumbered[i])] = marks[i];
  return live;
}

} // namespace

Schedule fuseRecomputing(Graph &graph) {
  // Each round recomputes values whose leaves the previous one may have
  // just made recomputable; none of the examples needs more than two.
  constexpr int kRounds = 4;
  std::vector<bool> sunk;
  Schedule schedule = fuse(graph, true, sunk);
  for (int round = 0; round < kRounds; ++round) {
    auto candidates = Recomputer(graph, schedule).find();
    if (candidates.empty())
      break;
    graph = rewrite(graph, candidates, sunk);
    schedule = fuse(graph, true, sunk);
  }
  return schedule;
}

} // namespace netc
