// Safetensors.cpp - the safetensors format, F32 tensors only.
#include "Safetensors.h"

#include "AtomicFile.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

namespace netc::rt {

namespace {

// The format allows headers of 100 MB; a header of 32 MB describes some
// 300,000 tensors, more than any model netc compiles, and nesting deeper
// than a safetensors header's (object, tensor, shape) is never needed:
// both bounds keep a hostile header from taking gigabytes to parse.
constexpr uint64_t kMaxHeader = 32u << 20;
constexpr int kMaxNesting = 8;

/// The deepest nesting of objects and arrays in `text` (strings skipped).
int nesting(const std::string &text) {
  int depth = 0, deepest = 0;
  bool inString = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (inString) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

std::string shapeString(const std::vector<int64_t> &shape) {
  return TensorInfo{"", shape, 0}.shapeString();
}

/// Refuses to write tensors that hold a NaN or an infinity: a good file is
/// never replaced by a diverged model.
void checkFinite(const std::vector<TensorView> &tensors, const std::string &path) {
  for (const TensorView &t : tensors) {
    int64_t count = 1;
    for (auto d : t.shape)
      count *= d;
    for (int64_t i = 0; i < count; ++i)
      if (!std::isfinite(t.data[i]))
        throw Error("'" + t.name + "' holds a non-finite value (" + std::to_string(t.data[i]) +
                    " at element " + std::to_string(i) + "); '" + path + "' was not written");
  }
}

} // namespace

void writeSafetensors(const std::string &path, const std::vector<TensorView> &tensors,
                      const std::map<std::string, std::string> &metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty())
    header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto &t : tensors) {
    uint64_t bytes = t.integer ? 8 : 4;
    for (auto d : t.shape)
      bytes *= static_cast<uint64_t>(d);
    header[t.name] = {{"dtype", t.integer ? "I64" : "F32"},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' '); // data starts 8-byte aligned
  uint64_t length = text.size();
  unsigned char prefix[8];
  for (int i = 0; i < 8; ++i)
    prefix[i] = static_cast<unsigned char>(length >> (8 * i));

  writeFileAtomically(path, [&](int fd) {
    writeAll(fd, prefix, 8, path);
    writeAll(fd, text.data(), text.size(), path);
    for (const auto &t : tensors) {
      size_t count = 1;
      for (auto d : t.shape)
        count *= static_cast<size_t>(d);
      if (!t.integer) {
        writeAll(fd, t.data, count * 4, path); // little-endian host
        continue;
      }
      std::vector<int64_t> ints(t.data, t.data + count);
      writeAll(fd, ints.data(), count * 8, path);
    }
  });
}

std::map<std::string, LoadedTensor> readSafetensors(const std::string &path,
                                                    std::map<std::string, std::string> *metadata,
                                                    bool headerOnly) {
  auto bad = [&](const std::string &what) {
    return Error("'" + path + "' is not a valid safetensors file: " + what);
  };
  struct stat st;
  bool known = ::stat(path.c_str(), &st) == 0;
  if (known && S_ISDIR(st.st_mode))
    throw Error("'" + path + "' is a folder, not a safetensors file");
  // A FIFO or a device would block or never end.
  if (known && !S_ISREG(st.st_mode))
    throw Error("'" + path +
                "' is not a regular file (a pipe or a device?); give a safetensors file");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error("cannot read '" + path + "': " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  auto fileSize = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  if (fileSize < 8)
    throw bad("it is too short");
  unsigned char prefix[8];
  in.read(reinterpret_cast<char *>(prefix), 8);
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i)
    length = (length << 8) | prefix[i];
  if (length > fileSize - 8)
    throw bad("the header length is larger than the file");
  if (length > kMaxHeader)
    throw bad("its header of " + std::to_string(length) + " bytes is larger than 32 MB");
  std::string text(length, '\0');
  in.read(text.data(), static_cast<std::streamsize>(length));
  if (nesting(text) > kMaxNesting)
    throw bad("its header nests deeper than " + std::to_string(kMaxNesting) + " levels");
  nlohmann::json header = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object())
    throw bad("the header is not a JSON object");
  uint64_t dataSize = fileSize - 8 - length;
  std::map<std::string, LoadedTensor> out;
  for (const auto &[name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        throw bad("__metadata__ is not an object");
      if (metadata)
        for (const auto &[k, v] : entry.items())
          if (v.is_string())
            (*metadata)[k] = v.get<std::string>();
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
      throw bad("tensor '" + name + "' lacks dtype, shape or data_offsets");
    if (entry["dtype"] != "F32" && entry["dtype"] != "I64")
      throw Error("'" + path + "': tensor '" + name + "' has dtype " + entry["dtype"].dump() +
                  "; netc reads F32 tensors (and I64 class labels)");
    LoadedTensor t;
    t.dtype = entry["dtype"];
    uint64_t width = t.dtype == "I64" ? 8 : 4;
    uint64_t numel = 1;
    for (const auto &d : entry["shape"]) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (1ull << 40))
        throw bad("tensor '" + name + "' has a malformed shape");
      t.shape.push_back(d.get<int64_t>());
      numel *= d.get<uint64_t>();
    }
    const auto &offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      throw bad("tensor '" + name + "' has malformed data_offsets");
    uint64_t begin = offsets[0], end = offsets[1];
    if (begin > end || end > dataSize || end - begin != numel * width)
      throw bad("tensor '" + name + "' has data_offsets outside the file or of the wrong size");
    if (headerOnly) {
      out.emplace(name, std::move(t));
      continue;
    }
    in.seekg(static_cast<std::streamoff>(8 + length + begin));
    char *dst;
    if (width == 8) {
      t.ints.resize(numel);
      dst = reinterpret_cast<char *>(t.ints.data());
    } else {
      t.data.resize(numel);
      dst = reinterpret_cast<char *>(t.data.data());
    }
    in.read(dst, static_cast<std::streamsize>(numel * width));
    if (!in)
      throw bad("cannot read the data of tensor '" + name + "'");
    out.emplace(name, std::move(t));
  }
  return out;
}

namespace {

/// A tensor of the file into its place in `persist`: F32 as is, I64 (a
/// buffer of whole numbers) converted.
void place(const LoadedTensor &t, const TensorInfo &into, float *persist) {
  if (into.integer)
    std::transform(t.ints.begin(), t.ints.end(), persist + into.offset,
                   [](int64_t v) { return static_cast<float>(v); });
  else
    std::memcpy(persist + into.offset, t.data.data(), t.data.size() * 4);
}

} // namespace

void loadWeights(const ModelInfo &model, const std::string &path, float *persist) {
  auto tensors = readSafetensors(path);
  for (const auto *list : {&model.params, &model.buffers})
    for (const auto &p : *list) {
      const char *what = list == &model.params ? "parameter" : "buffer";
      const char *dtype = p.fileType();
      auto it = tensors.find(p.name);
      if (it == tensors.end())
        throw Error("'" + path + "' has no tensor '" + p.name + "' (the model's " + what + " " +
                    p.name + ": " + (p.integer ? "i64" : "f32") + p.shapeString() + ")");
      if (it->second.dtype != dtype)
        throw Error("'" + path + "': tensor '" + p.name + "' is " + it->second.dtype +
                    ", the model's " + what + " is " + dtype);
      if (it->second.shape != p.shape)
        throw Error("'" + path + "': tensor '" + p.name + "' has shape " +
                    shapeString(it->second.shape) + ", the model needs " + p.shapeString());
      place(it->second, p, persist);
      tensors.erase(it);
    }
  if (!tensors.empty())
    throw Error("'" + path + "' has tensor '" + tensors.begin()->first +
                "', which is not a parameter or buffer of this model");
}

std::string modelFingerprint(const ModelInfo &m) {
  std::string text = m.optimizer + "|" + m.dataSource;
  for (const auto *list : {&m.params, &m.buffers, &m.states})
    for (const auto &t : *list)
      text += "|" + t.name + t.shapeString();
  uint64_t h = 0xcbf29ce484222325ULL; // FNV-1a
  for (unsigned char c : text)
    h = (h ^ c) * 0x100000001b3ULL;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

void saveCheckpoint(const ModelInfo &m, const std::string &path, const float *persist,
                    const CheckpointState &s) {
  std::vector<TensorView> views;
  for (const auto *list : {&m.params, &m.buffers, &m.states})
    for (const auto &t : *list)
      views.push_back({t.name, t.shape, persist + t.offset, t.integer});
  checkFinite(views, path);
  char loss[40];
  std::snprintf(loss, sizeof loss, "%.17g", s.epochLossSum);
  std::map<std::string, std::string> meta = {{"format", "netc-checkpoint"},
                                             {"model", m.name},
                                             {"fingerprint", modelFingerprint(m)},
                                             {"epoch", std::to_string(s.epoch)},
                                             {"position", std::to_string(s.position)},
                                             {"step", std::to_string(s.step)},
                                             {"seed", std::to_string(s.seed)},
                                             {"epoch_loss_sum", loss},
                                             {"epoch_seen", std::to_string(s.epochSeen)},
                                             {"batch", std::to_string(s.batch)},
                                             {"shuffle", s.shuffle ? "true" : "false"},
                                             {"data", s.data}};
  if (s.shards > 0) // a sharded run (netc --distributed)
    meta["shards"] = std::to_string(s.shards);
  writeSafetensors(path, views, meta);
}

CheckpointState loadCheckpoint(const ModelInfo &m, const std::string &path, float *persist) {
  std::map<std::string, std::string> meta;
  auto tensors = readSafetensors(path, &meta);
  if (meta["format"] != "netc-checkpoint")
    throw Error("'" + path + "' is not a netc training checkpoint (a weights file? use --init)");
  if (meta["fingerprint"] != modelFingerprint(m))
    throw Error("'" + path + "' is a checkpoint of another model ('" + meta["model"] +
                "'); this program trains '" + m.name + "'");
  for (const auto *list : {&m.params, &m.buffers, &m.states})
    for (const auto &t : *list) {
      auto it = tensors.find(t.name);
      if (it == tensors.end() || it->second.shape != t.shape || it->second.dtype != t.fileType())
        throw Error("'" + path + "' lacks tensor '" + t.name + "' " + t.shapeString());
      place(it->second, t, persist);
    }
  try {
    CheckpointState s;
    s.epoch = std::stoll(meta.at("epoch"));
    s.position = std::stoll(meta.at("position"));
    s.step = std::stoll(meta.at("step"));
    s.seed = std::stoull(meta.at("seed"));
    s.epochLossSum = std::stod(meta.at("epoch_loss_sum"));
    s.epochSeen = std::stoll(meta.at("epoch_seen"));
    if (meta.count("batch")) // recorded since session 3
      s.batch = std::stoll(meta.at("batch"));
    s.shuffle = meta["shuffle"] != "false";
    s.data = meta["data"]; // recorded since session 4
    if (meta.count("shards"))
      s.shards = std::stoll(meta.at("shards"));
    if (s.epoch < 0 || s.position < 0 || s.step < 0 || s.epochSeen < 0 || s.batch < 0 ||
        s.shards < 0 || !std::isfinite(s.epochLossSum))
      throw std::invalid_argument("negative");
    return s;
  } catch (const std::exception &) {
    throw Error("'" + path + "' has malformed training counters in its metadata");
  }
}

void checkReplaceable(const ModelInfo &model, const std::string &path, bool checkpoint) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0)
    return; // nothing there (or nothing we can see: the write will say)
  const char *what = checkpoint ? "checkpoint" : "weights file";
  const char *flag = checkpoint ? "--checkpoint" : "--save";
  auto refuse = [&](const std::string &why) {
    return Error("'" + path + "' " + why + "; it is not replaced. Move it away or give " + flag +
                 " another path");
  };
  if (!S_ISREG(st.st_mode))
    throw refuse("is not a regular file");
  std::map<std::string, std::string> meta;
  std::map<std::string, LoadedTensor> tensors;
  try {
    tensors = readSafetensors(path, &meta, /*headerOnly=*/true);
  } catch (const Error &) {
    throw refuse(std::string("exists and is not a ") + what +
                 " of this model (not a safetensors file)");
  }
  if (checkpoint) {
    if (meta["format"] != "netc-checkpoint")
      throw refuse("exists and is not a checkpoint");
    if (meta["fingerprint"] != modelFingerprint(model))
      throw refuse("is a checkpoint of another model (named '" + meta["model"] +
                   "', with other tensors, optimizer or data)");
    return;
  }
  if (meta["format"] == "netc-checkpoint")
    throw refuse("is a training checkpoint, not a weights file");
  bool same = tensors.size() == model.params.size() + model.buffers.size();
  for (const auto *list : {&model.params, &model.buffers})
    for (const auto &p : *list) {
      auto it = tensors.find(p.name);
      same = same && it != tensors.end() && it->second.dtype == p.fileType() &&
             it->second.shape == p.shape;
    }
  if (!same)
    throw refuse("exists and holds other tensors than this model's parameters (another model's "
                 "weights, or data?)");
}

void saveWeights(const ModelInfo &model, const std::string &path, const float *persist) {
  std::vector<TensorView> views;
  for (const auto *list : {&model.params, &model.buffers})
    for (const auto &p : *list)
      views.push_back({p.name, p.shape, persist + p.offset, p.integer});
  checkFinite(views, path);
  writeSafetensors(path, views, {{"format", "pt"}, {"producer", "netc"}, {"model", model.name}});
}

} // namespace netc::rt
