// Sources.h - the data sources, one function each, and the one entry the
// trainer calls. Each source reads its options from the model description
// (what sema's table of sources put there) and returns a Dataset laid out
// as the model's fields; what is common (a seeded test split, the class
// labels' range) is done once in openData.
#pragma once

#include "Dataset.h"

namespace netc::rt {

/// The training and test examples of the model's data source. `path`
/// (--data) replaces the source's file or folder; relative paths are taken
/// as the user gives them.
Splits openData(const ModelInfo &model, const std::string &path);

// The sources. Each returns all its examples, or its own training and test
// sets (idx, csv and tensors with test files).
Splits openSine(const ModelInfo &model, const std::string &path);
Splits openInline(const ModelInfo &model, const std::string &path);
Splits openTensors(const ModelInfo &model, const std::string &path);
Splits openIdx(const ModelInfo &model, const std::string &path);
Splits openCsv(const ModelInfo &model, const std::string &path);
Splits openAudio(const ModelInfo &model, const std::string &path);

/// New inputs for predictions (--predict-file): a file in the source's
/// format holding the model's input fields (targets may be there or not).
/// The dataset has the input fields only.
std::shared_ptr<const Dataset> openInputs(const ModelInfo &model, const std::string &file);

/// The model's input fields, as datasets of inputs lay them out.
std::vector<FieldLayout> inputLayouts(const ModelInfo &model);

std::shared_ptr<const Dataset> csvInputs(const ModelInfo &model, const std::string &file);
/// One clip, from a WAVE file, as the audio source reads it.
std::shared_ptr<const Dataset> audioInputs(const ModelInfo &model, const std::string &file);

/// The number of classes of a classifier (its class names, else the width
/// of its scores); 0 for other models.
int64_t classCount(const ModelInfo &model);

/// The field that holds class labels (the classifier's target), or -1.
int classField(const ModelInfo &model);

} // namespace netc::rt
