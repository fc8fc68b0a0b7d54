// ModelInfo.cpp - reads a model descriptor and its JSON description.
#include "ModelInfo.h"
#include "netc/runtime.h"

#include <nlohmann/json.hpp>

namespace netc::rt {

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : shape)
    n *= d;
  return n;
}

std::string TensorInfo::shapeString() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + (shape[i] == kBatch ? std::string("N") : std::to_string(shape[i]));
  return s + "]";
}

double ModelInfo::option(const std::string &key) const {
  auto it = dataNumbers.find(key);
  if (it == dataNumbers.end())
    throw Error("the model description lacks data option '" + key + "'");
  return it->second;
}

const std::string &ModelInfo::text(const std::string &key) const {
  auto it = dataTexts.find(key);
  if (it == dataTexts.end())
    throw Error("the model description lacks data option '" + key + "'");
  return it->second;
}

namespace {

OutputLocation location(const nlohmann::json &j) {
  OutputLocation at;
  at.shape = j.at("shape").get<std::vector<int64_t>>();
  at.region = j.at("region");
  if (at.region == "scratch") {
    at.fixedBytes = j.at("fixed");
    at.perNpadBytes = j.at("per_npad");
  } else if (at.region == "persist") {
    at.offset = j.at("offset");
  } else if (at.region == "input") {
    at.field = j.at("field");
  } else {
    at.value = j.at("value");
  }
  return at;
}

} // namespace

int64_t elementsOf(const std::vector<int64_t> &shape, int64_t n) {
  int64_t count = 1;
  for (auto d : shape)
    count *= d == kBatch ? n : d;
  return count;
}

const float *valuesAt(const OutputLocation &at, const char *scratch, const float *persist,
                      const float *const *inputs, int64_t n, float &constant) {
  if (at.region == "scratch")
    return reinterpret_cast<const float *>(scratch + at.fixedBytes +
                                           at.perNpadBytes * paddedBatch(n));
  if (at.region == "persist")
    return persist + at.offset;
  if (at.region == "input")
    return inputs[at.field];
  constant = static_cast<float>(at.value);
  return &constant;
}

ModelInfo parseModelInfo(const netc_model *code) {
  using nlohmann::json;
  if (!code)
    throw Error("no model");
  if (code->abi != NETC_ABI_VERSION)
    throw Error("this program was generated for runtime ABI " + std::to_string(code->abi) +
                ", the runtime has " + std::to_string(NETC_ABI_VERSION));
  try {
    json d = json::parse(code->description);
    ModelInfo m;
    m.code = code;
    m.name = d.at("name");
    m.cpu = d.at("target").at("cpu");
    m.features = d.at("target").at("features").get<std::vector<std::string>>();
    auto tensors = [](const json &list) {
      std::vector<TensorInfo> out;
      for (const auto &t : list)
        out.push_back({t.at("name"), t.at("shape").get<std::vector<int64_t>>(), t.at("offset"),
                       t.value("dtype", "F32") == "I64"});
      return out;
    };
    m.params = tensors(d.at("params"));
    m.buffers = tensors(d.at("buffers"));
    m.states = tensors(d.at("states"));
    // The buffer sizes are the descriptor's fields (what a C caller reads).
    m.persistentFloats = code->persistent_floats;
    m.maxChunks = d.at("max_chunks");
    m.scratchFixedBytes = code->scratch_fixed_bytes;
    m.scratchBatchBytesPerN = code->scratch_batch_bytes_per_n;
    m.gradientsFixedBytes = d.at("scratch_gradients").at("fixed_bytes");
    m.gradientsBatchBytesPerN = d.at("scratch_gradients").at("batch_bytes_per_n");
    m.scratch64FixedBytes = d.at("scratch_f64").at("fixed_bytes");
    m.scratch64BatchBytesPerN = d.at("scratch_f64").at("batch_bytes_per_n");
    for (const auto &at : d.at("scratch_f64").at("decisions"))
      m.decisions.push_back(location(at));
    const json &data = d.at("data");
    m.dataSource = data.at("source");
    for (const auto &[k, v] : data.at("options").items()) {
      if (v.is_string())
        m.dataTexts[k] = v.get<std::string>();
      else
        m.dataNumbers[k] = v.get<double>();
    }
    m.batch = data.at("batch");
    m.dataPath = data.at("path");
    for (const auto &[name, t] : data.at("inline").items())
      m.inlineTensors.emplace_back(name, t.at("values").get<std::vector<double>>());
    m.classes = data.at("classes").get<std::vector<std::string>>();
    if (d.contains("prediction")) {
      const json &p = d.at("prediction");
      m.prediction = {true, p.at("kind"), p.at("classes"), p.at("width"), p.at("target"),
                      location(p)};
    }
    for (const auto &f : data.at("fields"))
      m.fields.push_back({f.at("name"), f.at("role"), f.at("dtype"),
                          f.at("shape").get<std::vector<int64_t>>()});
    const json &hparams = d.at("hparams");
    m.lr = hparams.at(0).at("default");
    m.hparamCount = static_cast<int64_t>(hparams.size());
    m.optimizer = d.at("optimizer").at("kind");
    m.steps = d.at("train").at("steps");
    m.epochs = d.at("train").at("epochs");
    m.reportEvery = d.at("train").at("report_every");
    m.seed = d.at("train").at("seed");
    m.trains = d.at("trains");
    m.minBatch = d.value("min_batch", 1);
    m.lossGiven = d.at("loss_given");
    for (const auto &p : d.at("prints"))
      m.prints.push_back({p.at("text"), location(p)});
    for (const auto &k : d.at("profile"))
      m.profile.push_back({k.at("kernel"), k.at("name"), k.at("ops"), k.at("label"),
                           k.at("flops"), k.at("flops_per_n")});
    const json &probe = d.at("probe");
    m.source = probe.at("source");
    m.probeFixedBytes = probe.at("fixed_bytes");
    m.probeBatchBytesPerN = probe.at("batch_bytes_per_n");
    for (const auto &v : probe.at("values"))
      m.probe.push_back({v.at("op"), v.at("origin"), v.at("label"), v.at("phase"), v.at("line"),
                         v.at("column"), location(v)});
    for (const auto &r : d.at("report")) {
      if (r.contains("text"))
        m.report.push_back({r.at("text"), -1, 0, false, {}});
      else if (r.contains("value"))
        m.report.push_back({{}, -1, 0, true, location(r.at("value"))});
      else
        m.report.push_back({{}, r.at("param"), r.at("offset"), false, {}});
    }
    return m;
  } catch (const json::exception &e) {
    throw Error(std::string("corrupt model description in this program: ") + e.what());
  }
}

} // namespace netc::rt
