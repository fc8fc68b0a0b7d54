// Model.h - a checked model: everything the later stages need to know about a
// .nn file, with the forward computation already in graph form.
//
// Produced by sema (Sema.h); read by the pipeline, the planner and codegen,
// none of which look at the AST again.
#pragma once

#include "compiler/graph/Graph.h"

#include <map>
#include <string>
#include <vector>

namespace netc {

/// How a parameter is initialised, element by element, from the run's seed.
struct InitSpec {
  enum class Kind { Constant, Normal, Uniform };
  Kind kind = Kind::Constant;
  double a = 0; ///< Constant: the value; Normal: mean; Uniform: low
  double b = 0; ///< Normal: standard deviation; Uniform: high
};

struct ParamSpec {
  std::string name; ///< PyTorch state_dict name, e.g. "0.weight" or "a"
  Shape shape;
  InitSpec init;
  ValueId value = kNoValue; ///< its Param node in Model::graph
};

/// A model tensor that is not trained (PyTorch's buffers: batch norm's
/// running statistics): saved with the weights, updated by the training
/// step's effects, read in evaluation.
struct BufferSpec {
  std::string name; ///< PyTorch state_dict name, e.g. "1.running_mean"
  Shape shape;
  double init = 0;      ///< every element's initial value
  bool integer = false; ///< saved as I64 (num_batches_tracked), kept as f32
  ValueId value = kNoValue; ///< its Buffer node in Model::graph
};

/// A tensor the data set provides each step (`input x: f32[N]`).
struct FieldSpec {
  std::string name;
  std::string role; ///< "input" or "target"
  DType dtype = DType::F32;
  Shape shape;
  ValueId value = kNoValue;
};

/// A tensor written in the .nn file (data inline(x = [1, 2, 3])).
struct InlineTensor {
  std::string name;
  Shape shape; ///< as written; its first dimension is the batch
  std::vector<double> values;
};

struct DataSpec {
  std::string source; ///< a row of the data source table (DataSources.h)
  /// Every option of the source, defaults filled in: numbers and texts.
  std::map<std::string, double> numbers;
  std::map<std::string, std::string> texts;
  std::string path; ///< the default of the program's --data
  std::vector<InlineTensor> inlineTensors; ///< inline
  std::vector<std::string> classes; ///< class names, by label (may be empty)
  int64_t batch = 0; ///< examples per training step; 0: all at once
  std::vector<FieldSpec> fields;
};

/// The optimizer and its options, with PyTorch 1.13's meaning and defaults.
struct OptimizerSpec {
  std::string kind; ///< "sgd", "rmsprop", "adam" or "adamw"
  double lr = 0;
  double momentum = 0;    ///< sgd, rmsprop
  double dampening = 0;   ///< sgd
  bool nesterov = false;  ///< sgd
  bool centered = false;  ///< rmsprop
  bool amsgrad = false;   ///< adam, adamw
  double weightDecay = 0; ///< all (adamw: decoupled)
  double alpha = 0.99;    ///< rmsprop
  double beta1 = 0.9;     ///< adam, adamw
  double beta2 = 0.999;   ///< adam, adamw
  double eps = 1e-8;      ///< rmsprop, adam, adamw
};

struct TrainSpec {
  int64_t epochs = 0; ///< data sets with epochs (mnist): passes over the data
  int64_t steps = 1000;
  int64_t reportEvery = 100;
  uint64_t seed = 0;
};

/// A piece of the report line: literal text, one element of a parameter, or
/// a scalar expression computed by the forward pass.
struct ReportPiece {
  std::string text;
  int param = -1;     ///< index into Model::params, or -1 for text
  int64_t offset = 0; ///< flat element index within the parameter
  ValueId value = kNoValue; ///< an expression: output "report <i>" of forward
};

/// What the model's output is, so evaluation can turn it into a class and a
/// confidence, or show it beside the expected value.
enum class PredictionKind {
  Logits,           ///< scores over classes (cross_entropy)
  Probabilities,    ///< softmax output (cross_entropy after a softmax)
  LogProbabilities, ///< log_softmax output (nll)
  Probability,      ///< one probability of class 1 (bce)
  Logit,            ///< one score of class 1 (bce_with_logits)
  Values            ///< a regressor's values (mse, l1)
};

struct Prediction {
  ValueId value = kNoValue; ///< output "prediction" of the forward graph
  PredictionKind kind = PredictionKind::Logits;
  int target = -1; ///< the data field it is compared with, or -1
};

/// `print expr`: a value the program prints, labelled with its source text.
struct PrintSpec {
  std::string text;
  ValueId value = kNoValue; ///< output "print <i>" of the forward graph
};

struct Model {
  std::string name; ///< the file's stem, e.g. "sine"
  DataSpec data;
  std::vector<ParamSpec> params;
  std::vector<BufferSpec> buffers;
  Graph graph; ///< the forward computation; outputs "loss" and maybe "prediction"
  Prediction prediction; ///< set by cross_entropy and nll
  OptimizerSpec optimizer;
  TrainSpec train;
  std::vector<ReportPiece> report;
  std::vector<PrintSpec> prints;
  bool lossGiven = false; ///< the file has a loss statement
  /// Nothing to train: no parameters (the program evaluates and prints).
  bool trains() const { return !params.empty(); }
};

} // namespace netc
