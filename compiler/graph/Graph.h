// Graph.h - the symbolic graph IR: SSA tensor values in topological order.
//
// A Graph is an append-only list of nodes; a node's operands always come
// before it, so the list order is a valid schedule. Every node has a shape,
// a dtype and the .nn location it came from. Shapes may contain the symbolic
// batch dimension N (kBatch). Nodes are created through Graph::add, which
// runs the op's shape rule; user-facing shape errors are found by calling
// inferShape first (sema does).
#pragma once

#include "dsl/Loc.h"
#include "netc/runtime.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace netc {

enum class Op : uint8_t {
#define OP(Name, Mnemonic, Arity, Kind) Name,
#include "compiler/graph/Ops.def"
};

enum class OpKind : uint8_t {
  Leaf,
  Elementwise,
  Reduction,
  Shape,
  Rows,
  Gather,
  Window,
  Spectral,
  MatMul,
  Mode,
  Effect
};

using ValueId = int32_t;
constexpr ValueId kNoValue = -1;

/// The symbolic batch dimension, as the runtime contract writes it.
constexpr int64_t kBatch = NETC_BATCH_DIM;

struct Shape {
  std::vector<int64_t> dims;

  size_t rank() const { return dims.size(); }
  bool hasBatch() const;
  /// Product of the constant dims: numel is this, times N if hasBatch().
  int64_t constNumel() const;
  std::string str() const; ///< e.g. "[N, 3]"
  bool operator==(const Shape &) const = default;
};

enum class DType : uint8_t { F32, I64 };
const char *dtypeName(DType);

/// Op-specific attributes; each op uses the fields its row documents.
struct Attrs {
  double value = 0;          ///< Const; Dropout's p; BatchNorm's eps
  double momentum = 0;       ///< BatchNorm
  int64_t k = 0;             ///< PowI exponent, Slice index, leaf slot index
  Shape shape;               ///< SumTo, BroadcastTo, Reshape target
  bool transA = false;       ///< MatMul
  bool transB = false;       ///< MatMul
  std::string name;          ///< Input, Param, State, Buffer, HParam, Table
  std::vector<int64_t> window; ///< Window ops: [kh, kw,] stride h, w, padding t, b, l, r
  bool integer = false;      ///< Input: i64 elements (class labels)
  /// Table: its values, row-major (its name says what they are: tables of
  /// one name hold the same values).
  std::shared_ptr<const std::vector<double>> table;
  bool operator==(const Attrs &) const = default;
};

/// Which part of a training step a node computes (--check-finite names it
/// when the node is the first to give a value that is not finite).
enum class Phase : uint8_t { Forward, Backward, Update };
const char *phaseName(Phase);

struct Node {
  Op op;
  std::vector<ValueId> inputs;
  Shape shape;
  DType dtype = DType::F32;
  Attrs attrs;
  ast::Loc loc;
  std::string label; ///< the .nn name bound to this value (`z1 = ...`), if any
  Phase phase = Phase::Forward; ///< the graph's phase when the node was added
  /// The op this node was made for: its own, or in the backward pass the
  /// op whose gradient rule made it, in the update Param (Graph::setOrigin).
  Op origin = Op::Const;
};

const char *opName(Op);
int opArity(Op); ///< -1 for variadic
OpKind opKind(Op);

class Graph {
public:
  /// Appends a node after checking its shape rule; a failing rule here is a
  /// compiler bug (sema checks user input with inferShape beforehand).
  ValueId add(Op op, std::vector<ValueId> inputs, Attrs attrs = {},
              ast::Loc loc = {});

  /// References into the graph: invalidated by the next add().
  const Node &node(ValueId id) const { return nodes_[static_cast<size_t>(id)]; }
  const Shape &shape(ValueId id) const { return node(id).shape; }
  size_t size() const { return nodes_.size(); }
  const std::vector<Node> &nodes() const { return nodes_; }

  // Convenience constructors used by autodiff, optimizers and rewrites.
  ValueId constant(double value, ast::Loc loc = {});
  /// A Table of `shape` holding `values` (row-major), named by what they are.
  ValueId table(std::string name, Shape shape, std::vector<double> values, ast::Loc loc = {});
  ValueId unary(Op op, ValueId x, ast::Loc loc = {});
  ValueId binary(Op op, ValueId a, ValueId b, ast::Loc loc = {});
  /// A copy of `n` (of this graph or another) on `inputs`: its op,
  /// attributes, location, label, phase and origin.
  ValueId copy(const Node &n, std::vector<ValueId> inputs);

  /// Named results of the entry point this graph computes.
  struct Output {
    std::string name; ///< "loss", "grad a", ...
    ValueId value;
  };
  std::vector<Output> outputs;
  /// Assign nodes, in order; they run after every output is computed.
  std::vector<ValueId> effects;

  /// The output named `name`, or kNoValue. Looked up through an index of
  /// the outputs' names (a deep model asks for thousands of "grad i").
  ValueId output(std::string_view name) const;

  /// The phase new nodes belong to: autodiff adds the backward pass, the
  /// optimizers the update; passes that rebuild a graph keep each node's.
  void setPhase(Phase phase) { phase_ = phase; }
  /// New nodes are made for a node of `op` at `loc` (a gradient rule's,
  /// a parameter's update): they take its op as their origin, and its
  /// location when they have none. Until clearOrigin().
  void setOrigin(Op op, ast::Loc loc) {
    origin_ = op;
    originLoc_ = loc;
    hasOrigin_ = true;
  }
  void clearOrigin() { hasOrigin_ = false; }

  /// Names a value after the .nn binding it came from (first name wins).
  void setLabel(ValueId id, const std::string &label) {
    std::string &l = nodes_[static_cast<size_t>(id)].label;
    if (l.empty())
      l = label;
  }

private:
  /// output()'s index: name -> position in `outputs` (may be stale: see
  /// output()).
  mutable std::unordered_map<std::string, size_t> outputIndex_;
  std::vector<Node> nodes_;
  Phase phase_ = Phase::Forward;
  Op origin_ = Op::Const;
  ast::Loc originLoc_;
  bool hasOrigin_ = false;
};

/// The shape rule of `op`: the result shape, or a message for the user.
struct ShapeResult {
  Shape shape;
  std::string error; ///< empty on success
};
ShapeResult inferShape(Op op, const std::vector<const Shape *> &operands,
                       const Attrs &attrs);

/// A copy of `g`, node by node in order, each on its operands' copies:
/// `replace(out, id, operands)` gives node `id`'s replacement (nodes it
/// adds take the node's phase and origin, the result its label), or
/// kNoValue for a copy (Graph::copy). The outputs and effects follow their
/// nodes.
using Replacement =
    std::function<ValueId(Graph &out, ValueId id, const std::vector<ValueId> &operands)>;
Graph rebuild(const Graph &g, const Replacement &replace);

/// NumPy broadcasting of two shapes; nullopt if they do not broadcast.
std::optional<Shape> broadcastShapes(const Shape &a, const Shape &b);

} // namespace netc
