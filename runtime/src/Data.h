// Data.h - the data sets an emitted program trains on.
#pragma once

#include "ModelInfo.h"

#include <vector>

namespace netc::rt {

/// Every field of the data set, as the model declares them, in full.
struct Dataset {
  int64_t n = 0;                          ///< rows (the batch dimension)
  std::vector<std::vector<float>> fields; ///< in declaration order
};

/// Builds or loads the model's data set. Throws Error for bad options.
Dataset loadData(const ModelInfo &model);

} // namespace netc::rt
