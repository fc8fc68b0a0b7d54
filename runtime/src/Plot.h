// Plot.h - pictures of training, evaluation and predictions as SVG files a
// browser opens (--plot, netc plot): no plotting library, a few hundred
// lines of SVG text.
//
//   trainingPlot   loss (train per report and per epoch, test) and, for
//                  classifiers, test accuracy over the training steps
//   confusionPlot  the confusion matrix, each row shaded by its share
//   predictionGrid sampled image inputs with predicted and expected classes
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace netc::rt {

/// The loss and accuracy curves of the metrics records of one run (the
/// "report" and "epoch" events --metrics writes), titled `title`.
std::string trainingPlot(const std::vector<nlohmann::json> &records, const std::string &title);

/// The records of the last run in a metrics file's lines: a run starts
/// where the step count goes down.
std::vector<nlohmann::json> lastRun(const std::vector<nlohmann::json> &records);

/// counts[expected * K + predicted] for K = classes.size().
std::string confusionPlot(const std::vector<std::string> &classes,
                          const std::vector<int64_t> &counts, const std::string &title);

/// One sampled input of an image model: height x width values in [0, 1]
/// (or any range: each image is scaled to its own), and its answer.
struct PlottedImage {
  int64_t height = 0, width = 0;
  std::vector<float> pixels;
  std::string predicted, expected, name;
};
std::string predictionGrid(const std::vector<PlottedImage> &images, const std::string &title);

} // namespace netc::rt
