// Wav.cpp - the WAVE reader, and the audio source: a folder of WAVE files,
// each one example, labelled by its sub-folder or a pattern on its name.
#include "Wav.h"
#include "Sources.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <regex>
#include <set>

namespace netc::rt {

namespace {

uint32_t u32(const uint8_t *p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
uint16_t u16(const uint8_t *p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

constexpr uint16_t kPcm = 1, kFloat = 3, kExtensible = 0xFFFE;

/// One sample at `p` as torchaudio.load(normalize=True) scales it.
float sample(const uint8_t *p, int bits, bool isFloat) {
  if (isFloat) {
    if (bits == 32) {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    double d;
    std::memcpy(&d, p, 8);
    return static_cast<float>(d);
  }
  switch (bits) {
  case 8:
    return static_cast<float>(static_cast<int>(p[0]) - 128) / 128.0f;
  case 16:
    return static_cast<float>(static_cast<int16_t>(u16(p))) / 32768.0f;
  case 24: {
    // Sign-extend the three bytes through the top of an int32.
    auto v =
        static_cast<int32_t>(static_cast<uint32_t>(p[0]) << 8 | static_cast<uint32_t>(p[1]) << 16 |
                             static_cast<uint32_t>(p[2]) << 24) >>
        8;
    return static_cast<float>(v) / 8388608.0f;
  }
  default:
    return static_cast<float>(static_cast<double>(static_cast<int32_t>(u32(p))) / 2147483648.0);
  }
}

} // namespace

WavAudio parseWav(const uint8_t *bytes, size_t size, const std::string &name) {
  auto fail = [&](const std::string &what) -> Error {
    return Error("'" + name + "' is not a usable WAVE file: " + what);
  };
  if (size < 12 || std::memcmp(bytes, "RIFF", 4) != 0 || std::memcmp(bytes + 8, "WAVE", 4) != 0)
    throw fail(size >= 4 && std::memcmp(bytes, "RIFX", 4) == 0
                   ? "it is big-endian (RIFX); convert it, e.g. sox in.wav -L out.wav"
                   : "it does not start with RIFF....WAVE");
  // The RIFF size may be larger than the file (a truncated file, or a
  // writer that never went back to fix it); the chunks decide.
  size_t end = std::min<size_t>(size, 8 + static_cast<size_t>(u32(bytes + 4)));
  const uint8_t *fmt = nullptr, *data = nullptr;
  size_t fmtSize = 0, dataSize = 0;
  for (size_t at = 12; at + 8 <= end;) {
    size_t chunk = u32(bytes + at + 4);
    const uint8_t *body = bytes + at + 8;
    size_t room = end - (at + 8);
    if (std::memcmp(bytes + at, "fmt ", 4) == 0) {
      if (chunk > room)
        throw fail("its fmt chunk is cut short");
      fmt = body;
      fmtSize = chunk;
    } else if (std::memcmp(bytes + at, "data", 4) == 0) {
      if (chunk > room)
        throw fail("its data chunk says " + std::to_string(chunk) + " bytes, the file holds " +
                   std::to_string(room) + " (truncated?)");
      data = body;
      dataSize = chunk;
      break;
    }
    if (chunk > room)
      break; // a trailing chunk cut short: no data chunk follows it
    at += 8 + chunk + (chunk & 1);
  }
  if (!fmt)
    throw fail("it has no fmt chunk before its data");
  if (fmtSize < 16)
    throw fail("its fmt chunk has " + std::to_string(fmtSize) + " bytes, fewer than 16");
  if (!data)
    throw fail("it has no data chunk");
  WavAudio a;
  uint16_t format = u16(fmt);
  a.channels = u16(fmt + 2);
  a.sampleRate = u32(fmt + 4);
  uint16_t blockAlign = u16(fmt + 12);
  a.bits = u16(fmt + 14);
  if (format == kExtensible) {
    if (fmtSize < 40)
      throw fail("its WAVE_FORMAT_EXTENSIBLE fmt chunk has " + std::to_string(fmtSize) +
                 " bytes, fewer than 40");
    format = u16(fmt + 24); // the sub-format GUID's first two bytes
  }
  if (format != kPcm && format != kFloat)
    throw fail("its encoding " + std::to_string(format) +
               " is neither integer PCM (1) nor IEEE float (3); convert it, e.g. sox in.wav "
               "-e signed-integer out.wav");
  a.isFloat = format == kFloat;
  bool bitsOk = a.isFloat ? a.bits == 32 || a.bits == 64
                          : a.bits == 8 || a.bits == 16 || a.bits == 24 || a.bits == 32;
  if (!bitsOk)
    throw fail(std::to_string(a.bits) + "-bit " + (a.isFloat ? "float" : "integer") +
               " samples are not supported (integers: 8, 16, 24, 32 bits; floats: 32, 64)");
  if (a.channels < 1)
    throw fail("it has no channels");
  if (a.sampleRate < 1)
    throw fail("its sample rate is 0");
  size_t frameBytes = static_cast<size_t>(a.channels) * static_cast<size_t>(a.bits / 8);
  if (blockAlign != frameBytes)
    throw fail("its block size " + std::to_string(blockAlign) + " is not channels × bytes (" +
               std::to_string(frameBytes) + ")");
  if (dataSize % frameBytes != 0)
    throw fail("its data chunk (" + std::to_string(dataSize) +
               " bytes) is not a whole number of frames of " + std::to_string(frameBytes) +
               " bytes");
  size_t count = dataSize / (frameBytes / static_cast<size_t>(a.channels));
  a.samples.resize(count);
  size_t step = static_cast<size_t>(a.bits / 8);
  for (size_t i = 0; i < count; ++i)
    a.samples[i] = sample(data + i * step, a.bits, a.isFloat);
  return a;
}

WavAudio readWav(const std::string &path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error("'" + path + "' does not exist or is not a file");
  auto size = std::filesystem::file_size(path, ec);
  if (ec)
    throw Error("'" + path + "' cannot be read: " + ec.message());
  if (size > (uint64_t{1} << 30))
    throw Error("'" + path + "' is larger than 1 GiB; split it into clips");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char *>(bytes.data()), static_cast<std::streamsize>(size)))
    throw Error("'" + path + "' cannot be read");
  return parseWav(bytes.data(), bytes.size(), path);
}

namespace {

void checkChannel(const WavAudio &a, int channel, const std::string &name) {
  if (channel >= a.channels)
    throw Error("'" + name + "' has " + counted(a.channels, "channel") + "; there is no channel " +
                std::to_string(channel) + " (channels count from 0)");
}

} // namespace

std::vector<float> monoClip(const WavAudio &a, int channel, int64_t length,
                            const std::string &name) {
  checkChannel(a, channel, name);
  std::vector<float> out(static_cast<size_t>(length), 0.0f);
  int64_t frames = std::min(length, a.frames());
  for (int64_t i = 0; i < frames; ++i) {
    const float *frame = a.samples.data() + i * a.channels;
    if (channel >= 0) {
      out[static_cast<size_t>(i)] = frame[channel];
      continue;
    }
    float sum = 0;
    for (int c = 0; c < a.channels; ++c)
      sum += frame[c];
    out[static_cast<size_t>(i)] = sum / static_cast<float>(a.channels);
  }
  return out;
}

std::vector<float> resample(const std::vector<float> &x, int64_t from, int64_t to,
                            const std::string &name) {
  if (from == to)
    return x;
  constexpr double kPi = 3.14159265358979323846, kZeros = 6, kRolloff = 0.99;
  int64_t g = std::gcd(from, to), o = from / g, n = to / g;
  double base = static_cast<double>(std::min(o, n)) * kRolloff;
  auto width = static_cast<int64_t>(std::ceil(kZeros * static_cast<double>(o) / base));
  int64_t taps = 2 * width + o;
  if (n * taps > (int64_t{1} << 24))
    throw Error("'" + name + "': resampling " + std::to_string(from) + " Hz to " +
                std::to_string(to) + " Hz needs filters of " + std::to_string(n * taps) +
                " taps (the rates have no large common divisor); convert it first, e.g. sox in.wav "
                "-r " +
                std::to_string(to) + " out.wav");
  // kernel[j][i]: output phase j, input offset i - width.
  std::vector<float> kernel(static_cast<size_t>(n * taps));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < taps; ++i) {
      double t = (static_cast<double>(i - width) / static_cast<double>(o) -
                  static_cast<double>(j) / static_cast<double>(n)) *
                 base;
      t = std::clamp(t, -kZeros, kZeros);
      double window = std::cos(t * kPi / kZeros / 2);
      window *= window;
      t *= kPi;
      double sinc = t == 0 ? 1.0 : std::sin(t) / t;
      kernel[static_cast<size_t>(j * taps + i)] =
          static_cast<float>(sinc * window * base / static_cast<double>(o));
    }
  auto length = static_cast<int64_t>(x.size());
  int64_t blocks = length / o + 1;
  auto target = static_cast<int64_t>(
      std::ceil(static_cast<double>(n) * static_cast<double>(length) / static_cast<double>(o)));
  std::vector<float> out(static_cast<size_t>(target));
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t j = 0; j < n && b * n + j < target; ++j) {
      const float *k = kernel.data() + j * taps;
      float sum = 0;
      // x padded with `width` zeros before it: input index b·o + i - width.
      int64_t start = b * o - width;
      for (int64_t i = std::max<int64_t>(0, -start); i < taps && start + i < length; ++i)
        sum += k[i] * x[static_cast<size_t>(start + i)];
      out[static_cast<size_t>(b * n + j)] = sum;
    }
  return out;
}

std::vector<float> monoClipAt(const WavAudio &a, int channel, int64_t length, int64_t rate,
                              const std::string &name) {
  if (a.sampleRate == rate)
    return monoClip(a, channel, length, name);
  checkChannel(a, channel, name);
  WavAudio r;
  r.sampleRate = rate;
  r.channels = channel >= 0 ? 1 : a.channels;
  std::vector<std::vector<float>> parts;
  for (int c = 0; c < a.channels; ++c) {
    if (channel >= 0 && c != channel)
      continue;
    std::vector<float> one(static_cast<size_t>(a.frames()));
    for (int64_t i = 0; i < a.frames(); ++i)
      one[static_cast<size_t>(i)] = a.samples[static_cast<size_t>(i * a.channels + c)];
    parts.push_back(resample(one, a.sampleRate, rate, name));
  }
  size_t frames = parts.front().size();
  r.samples.resize(frames * parts.size());
  for (size_t i = 0; i < frames; ++i)
    for (size_t c = 0; c < parts.size(); ++c)
      r.samples[i * parts.size() + c] = parts[c][i];
  return monoClip(r, channel >= 0 ? 0 : -1, length, name);
}

namespace {

/// The model's one input field, its numel the clip length.
const FieldLayout &audioInput(const std::vector<FieldLayout> &layouts) {
  const FieldLayout *input = nullptr;
  for (const FieldLayout &l : layouts)
    if (l.role == "input") {
      if (input)
        throw Error("the audio source gives one input field, the clip; this model has more");
      input = &l;
    }
  if (!input || input->integer)
    throw Error("the audio source needs one f32 input field, the clip");
  return *input;
}

/// A clip of `file` as the model takes it: at its sample rate, one channel,
/// `length` samples.
std::vector<float> clip(const ModelInfo &m, const std::string &file, int64_t length) {
  WavAudio a = readWav(file);
  return monoClipAt(a, static_cast<int>(m.option("channel")), length,
                    static_cast<int64_t>(m.option("sample_rate")), file);
}

struct Clip {
  std::string path;  ///< relative to the folder
  std::string label; ///< the class name
  bool test = false;
};

/// The class name of a clip: its sub-folder, or what `pattern` finds in its
/// file name (the first group, if the pattern has one).
std::string labelOf(const std::filesystem::path &relative, const std::string &rule,
                    const std::regex &pattern, const std::string &dir) {
  if (rule == "folder") {
    if (!relative.has_parent_path())
      throw Error("'" + (std::filesystem::path(dir) / relative).string() +
                  "' is not in a sub-folder; with label = \"folder\" each class is a sub-folder");
    return relative.begin()->string();
  }
  std::smatch match;
  std::string file = relative.filename().string();
  if (!std::regex_search(file, match, pattern))
    throw Error("the label pattern \"" + rule + "\" finds nothing in the file name '" + file +
                "' (in '" + dir + "')");
  return match.size() > 1 ? match[1].str() : match[0].str();
}

std::regex compiled(const std::string &pattern, const char *option) {
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error &e) {
    throw Error(std::string("the audio option ") + option + " = \"" + pattern +
                "\" is not a regular expression: " + e.what());
  }
}

bool isWav(const std::filesystem::path &p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".wav" || ext == ".wave";
}

/// The .wav files under `dir` (its sub-folders too), relative to it, in
/// path order; `what` names the folder in errors.
std::vector<std::filesystem::path> wavFilesUnder(const std::string &dir, const std::string &what) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec) && isWav(it->path()))
      files.push_back(std::filesystem::relative(it->path(), dir, ec));
  if (ec)
    throw Error(what + " '" + dir + "' cannot be read: " + ec.message());
  if (files.empty())
    throw Error(what + " '" + dir + "' has no .wav files");
  std::sort(files.begin(), files.end(),
            [](const auto &a, const auto &b) { return a.string() < b.string(); });
  return files;
}

} // namespace

// audio(dir, sample_rate, label, test_files, channel, classes, ...): every
// .wav file under `dir`, in the order of their paths.
Splits openAudio(const ModelInfo &m, const std::string &dir) {
  std::vector<FieldLayout> layouts = fieldLayouts(m);
  const FieldLayout &input = audioInput(layouts);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw Error("the audio folder '" + dir + "' does not exist (give --data DIR)");
  const std::string &rule = m.text("label");
  std::regex pattern = compiled(rule == "folder" ? "" : rule, "label");
  const std::string &testRule = m.text("test_files");
  std::regex testPattern = compiled(testRule, "test_files");

  std::vector<Clip> clips;
  for (const std::filesystem::path &relative : wavFilesUnder(dir, "the audio folder")) {
    Clip c{relative.string(), labelOf(relative, rule, pattern, dir), false};
    c.test = !testRule.empty() && std::regex_search(relative.filename().string(), testPattern);
    clips.push_back(std::move(c));
  }

  // Class names: the model's, else the labels found, in sorted order.
  std::vector<std::string> names = m.classes;
  if (names.empty()) {
    if (int64_t count = classCount(m); count > 0) {
      for (int64_t i = 0; i < count; ++i)
        names.push_back(std::to_string(i));
    } else {
      std::set<std::string> found;
      for (const Clip &c : clips)
        found.insert(c.label);
      names.assign(found.begin(), found.end());
    }
  }
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < names.size(); ++i)
    index[names[i]] = static_cast<int64_t>(i);

  int64_t length = input.numel;
  std::vector<TableDataset::Column> train(2), test(2);
  std::vector<std::string> trainNames, testNames;
  int64_t trainCount = 0, testCount = 0;
  auto in = static_cast<size_t>(&input - layouts.data());
  for (const Clip &c : clips) {
    auto found = index.find(c.label);
    if (found == index.end())
      throw Error("'" + c.path + "' in '" + dir + "' is labelled \"" + c.label +
                  "\", which is not a class of this model");
    std::vector<float> samples = clip(m, (std::filesystem::path(dir) / c.path).string(), length);
    auto &cols = c.test ? test : train;
    cols[in].floats.insert(cols[in].floats.end(), samples.begin(), samples.end());
    cols[1 - in].ints.push_back(found->second);
    (c.test ? testNames : trainNames).push_back(c.path);
    ++(c.test ? testCount : trainCount);
  }
  if (trainCount == 0)
    throw Error("every clip in '" + dir + "' matches test_files = \"" + testRule +
                "\"; none is left for training");
  Splits s;
  auto trainSet = std::make_shared<TableDataset>(layouts, std::move(train), trainCount);
  trainSet->setNames(std::move(trainNames));
  s.train = std::move(trainSet);
  if (testCount > 0) {
    auto testSet = std::make_shared<TableDataset>(layouts, std::move(test), testCount);
    testSet->setNames(std::move(testNames));
    s.test = std::move(testSet);
  }
  s.description = std::to_string(trainCount) + " training" +
                  (testCount > 0 ? ", " + counted(testCount, "test clip") : " clips");
  s.classes = std::move(names);
  return s;
}

std::shared_ptr<const Dataset> audioInputs(const ModelInfo &m, const std::string &path) {
  std::vector<FieldLayout> layouts = inputLayouts(m);
  const FieldLayout &input = audioInput(layouts);
  // A clip, or every clip under a folder, in path order.
  std::vector<std::string> files;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    for (const std::filesystem::path &relative : wavFilesUnder(path, "the folder"))
      files.push_back((std::filesystem::path(path) / relative).string());
  } else {
    files.push_back(path);
  }
  std::vector<TableDataset::Column> cols(1);
  for (const std::string &f : files) {
    std::vector<float> samples = clip(m, f, input.numel);
    cols[0].floats.insert(cols[0].floats.end(), samples.begin(), samples.end());
  }
  auto data = std::make_shared<TableDataset>(std::move(layouts), std::move(cols),
                                             static_cast<int64_t>(files.size()));
  data->setNames(std::move(files));
  return data;
}

} // namespace netc::rt
