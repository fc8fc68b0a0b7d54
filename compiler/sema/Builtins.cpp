// Builtins.cpp - the rows of the built-in registry.
#include "compiler/sema/Builtins.h"

namespace netc {

namespace {

using K = BuiltinKind;
using L = Lowering;

const Builtin kBuiltins[] = {
    // Elementwise functions, named by their ops' mnemonics.
    {"sin", K::Function, L::Elementwise, Op::Sin, "sin(x)"},
    {"cos", K::Function, L::Elementwise, Op::Cos, "cos(x)"},
    {"exp", K::Function, L::Elementwise, Op::Exp, "exp(x)"},
    {"log", K::Function, L::Elementwise, Op::Log, "log(x)"},
    {"sigmoid", K::Function, L::Elementwise, Op::Sigmoid, "sigmoid(x)"},
    {"relu", K::Function, L::Elementwise, Op::Relu, "relu(x)"},
    {"tanh", K::Function, L::Elementwise, Op::Tanh, "tanh(x)"},
    {"sqrt", K::Function, L::Elementwise, Op::Sqrt, "sqrt(x)"},
    {"abs", K::Function, L::Elementwise, Op::Abs, "abs(x)"},
    {"sum", K::Function, L::Sum, Op::Sum, "sum(x)"},
    {"mean", K::Function, L::Mean, Op::Sum, "mean(x)"},
    {"softmax", K::Function, L::Row, Op::Softmax, "softmax(x, dim = -1)"},
    {"log_softmax", K::Function, L::Row, Op::LogSoftmax, "log_softmax(x, dim = -1)"},
    {"stack", K::Function, L::Stack, Op::Stack, "stack(a, b, ...)"},
    {"mse", K::Function, L::PointwiseLoss, Op::Abs, "mse(prediction, target, reduction = mean)"},
    {"l1", K::Function, L::PointwiseLoss, Op::Abs, "l1(prediction, target, reduction = mean)"},
    {"bce", K::Function, L::PointwiseLoss, Op::Abs, "bce(probabilities, target, reduction = mean)"},
    {"bce_with_logits", K::Function, L::PointwiseLoss, Op::Abs,
     "bce_with_logits(scores, target, reduction = mean)"},
    {"cross_entropy", K::Function, L::ClassLoss, Op::LogSoftmax, "cross_entropy(scores, labels)"},
    {"nll", K::Function, L::ClassLoss, Op::Pick, "nll(log_probs, labels)"},
    {"flatten", K::Function, L::Flatten, Op::Reshape, "flatten(x, start = 0, end = -1)"},

    // Layers, applied with `x -> layer`.
    {"linear", K::Layer, L::Linear, Op::MatMul, "linear(in, out, bias = 1)"},
    {"conv2d", K::Layer, L::Conv, Op::Conv2d,
     "conv2d(in, out, kernel, stride = 1, padding = 0, bias = 1)"},
    {"max_pool2d", K::Layer, L::Pool, Op::MaxPool2d,
     "max_pool2d(kernel, stride = kernel, padding = 0)"},
    {"avg_pool2d", K::Layer, L::Pool, Op::AvgPool2d, "avg_pool2d(kernel, stride = kernel)"},
    {"batch_norm1d", K::Layer, L::BatchNorm, Op::BatchNorm,
     "batch_norm1d(channels, eps = 1e-5, momentum = 0.1)"},
    {"batch_norm2d", K::Layer, L::BatchNorm, Op::BatchNorm,
     "batch_norm2d(channels, eps = 1e-5, momentum = 0.1)"},
    {"dropout", K::Layer, L::Dropout, Op::Dropout, "dropout(p = 0.5)"},
    {"spectrogram", K::Layer, L::Spectrogram, Op::Frames,
     "spectrogram(n_fft = 400, win_length = n_fft, hop_length = win_length / 2, power = 2, "
     "center = true)"},
    {"mel_spectrogram", K::Layer, L::Spectrogram, Op::Frames,
     "mel_spectrogram(sample_rate = 16000, n_fft = 400, win_length = n_fft, hop_length = "
     "win_length / 2, f_min = 0, f_max = sample_rate / 2, n_mels = 128, power = 2, center = true, "
     "norm = \"none\", mel_scale = \"htk\")"},
    {"amplitude_to_db", K::Layer, L::Spectrogram, Op::Log,
     "amplitude_to_db(stype = \"power\")"},
    {"flatten", K::Layer, L::Flatten, Op::Reshape, "flatten(start = 1, end = -1)"},
    {"relu", K::Layer, L::Elementwise, Op::Relu, "relu"},
    {"sigmoid", K::Layer, L::Elementwise, Op::Sigmoid, "sigmoid"},
    {"tanh", K::Layer, L::Elementwise, Op::Tanh, "tanh"},
    {"softmax", K::Layer, L::Row, Op::Softmax, "softmax(dim = -1)"},
    {"log_softmax", K::Layer, L::Row, Op::LogSoftmax, "log_softmax(dim = -1)"},

    // Parameter initializers.
    {"randn", K::Initializer, L::None, Op::Abs, "randn()"},
    {"rand", K::Initializer, L::None, Op::Abs, "rand()"},
    {"normal", K::Initializer, L::None, Op::Abs, "normal(mean, std)"},
    {"uniform", K::Initializer, L::None, Op::Abs, "uniform(low, high)"},
    {"zeros", K::Initializer, L::None, Op::Abs, "zeros()"},
    {"ones", K::Initializer, L::None, Op::Abs, "ones()"},
    {"kaiming_uniform", K::Initializer, L::None, Op::Abs, "kaiming_uniform(fan_in)"},

    // Optimizers.
    {"sgd", K::Optimizer, L::None, Op::Abs, "sgd(lr, momentum = 0, ...)"},
    {"rmsprop", K::Optimizer, L::None, Op::Abs, "rmsprop(lr = 0.01, ...)"},
    {"adam", K::Optimizer, L::None, Op::Abs, "adam(lr = 1e-3, ...)"},
    {"adamw", K::Optimizer, L::None, Op::Abs, "adamw(lr = 1e-3, ...)"},

    // Constants.
    {"pi", K::Constant, L::None, Op::Const, "pi"},
};

} // namespace

const Builtin *findBuiltin(std::string_view name, BuiltinKind kind) {
  for (const Builtin &b : kBuiltins)
    if (b.kind == kind && b.name == name)
      return &b;
  return nullptr;
}

std::vector<std::string> builtinNames(BuiltinKind kind) {
  std::vector<std::string> names;
  for (const Builtin &b : kBuiltins)
    if (b.kind == kind)
      names.emplace_back(b.name);
  return names;
}

bool isReservedName(std::string_view name) {
  return findBuiltin(name, BuiltinKind::Function) || findBuiltin(name, BuiltinKind::Constant);
}

} // namespace netc
