// IdxTest.cpp - the runtime's IDX reader on good, truncated and lying files,
// plain and gzipped.
#include "Idx.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

namespace netc::rt {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> idx(std::vector<uint32_t> dims, std::vector<uint8_t> data, uint8_t type = 8) {
  std::vector<uint8_t> out = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8)
      out.push_back(static_cast<uint8_t>(d >> s));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

class Idx : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netc-idx-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string &name, const std::vector<uint8_t> &bytes, bool gz = false) {
    std::string path = (dir_ / name).string();
    if (gz) {
      gzFile f = gzopen(path.c_str(), "wb");
      gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
      gzclose(f);
    } else {
      std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char *>(bytes.data()),
                                                  static_cast<std::streamsize>(bytes.size()));
    }
    return path;
  }

  std::string errorOf(const std::function<void()> &f) {
    try {
      f();
    } catch (const Error &e) {
      return e.what();
    }
    return "(no error)";
  }

  fs::path dir_;
};

TEST_F(Idx, ReadsPlainAndGzipped) {
  std::vector<uint8_t> pixels(2 * 3 * 4);
  for (size_t i = 0; i < pixels.size(); ++i)
    pixels[i] = static_cast<uint8_t>(i * 10);
  for (bool gz : {false, true}) {
    auto a = readIdx(write(gz ? "i.gz" : "i", idx({2, 3, 4}, pixels), gz));
    EXPECT_EQ(a.dims, (std::vector<uint32_t>{2, 3, 4}));
    EXPECT_EQ(a.data, pixels);
  }
}

TEST_F(Idx, LoadsImagesWithLabels) {
  auto images = write("img", idx({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8}));
  auto labels = write("lab.gz", idx({2}, {9, 0}), true);
  LabeledImages d = loadLabeledImages(images, labels, 10);
  EXPECT_EQ(d.count, 2);
  EXPECT_EQ(d.rows, 2);
  EXPECT_EQ(d.cols, 2);
  EXPECT_EQ(d.labels, (std::vector<uint8_t>{9, 0}));
}

TEST_F(Idx, RefusesTruncatedFiles) {
  auto full = idx({3, 2, 2}, std::vector<uint8_t>(12, 7));
  auto header = std::vector<uint8_t>(full.begin(), full.begin() + 6);
  auto data = std::vector<uint8_t>(full.begin(), full.end() - 1);
  EXPECT_EQ(errorOf([&] { readIdx(write("h", header)); }),
            "'" + (dir_ / "h").string() + "' is truncated: it ends inside the header");
  EXPECT_EQ(errorOf([&] { readIdx(write("d", data)); }),
            "'" + (dir_ / "d").string() + "' is truncated: it ends inside the data");
  // A gzip stream cut short is an error too, not silently fewer pixels.
  std::string gz = write("full.gz", full, true);
  auto size = fs::file_size(gz);
  fs::resize_file(gz, size - 12);
  EXPECT_NE(errorOf([&] { readIdx(gz); }), "(no error)");
}

TEST_F(Idx, RefusesLyingFiles) {
  // The header claims a billion images: an error, without allocating them.
  EXPECT_EQ(errorOf([&] { readIdx(write("big", idx({1000000000, 28, 28}, {1, 2, 3}))); }),
            "'" + (dir_ / "big").string() + "' claims more than 16 GiB of data");
  EXPECT_EQ(errorOf([&] { readIdx(write("more", idx({100, 28, 28}, {1, 2, 3}))); }),
            "'" + (dir_ / "more").string() + "' is truncated: it ends inside the data");
  EXPECT_EQ(errorOf([&] { readIdx(write("long", idx({2}, {1, 2, 3}))); }),
            "'" + (dir_ / "long").string() + "' is longer than its header says");
  EXPECT_EQ(errorOf([&] { readIdx(write("magic", {1, 2, 8, 1, 0, 0, 0, 1, 5})); }),
            "'" + (dir_ / "magic").string() + "' is not an IDX file (bad magic number)");
  EXPECT_EQ(errorOf([&] { readIdx(write("float", idx({1}, {0, 0, 0, 0}, 0x0d))); }),
            "'" + (dir_ / "float").string() + "' holds IDX type 0x0d; netc reads unsigned bytes (type 0x08)");
  auto images = write("img", idx({2, 1, 1}, {1, 2}));
  EXPECT_EQ(errorOf([&] { loadLabeledImages(images, write("three", idx({3}, {1, 2, 3})), 10); }),
            "'" + images + "' has 2 images but '" + (dir_ / "three").string() + "' has 3 labels");
  EXPECT_EQ(errorOf([&] { loadLabeledImages(images, write("range", idx({2}, {1, 12})), 10); }),
            "'" + (dir_ / "range").string() +
                "': label 12 of item 1 is not below the number of classes (10)");
  EXPECT_EQ(errorOf([&] { loadLabeledImages(write("flat", idx({2}, {1, 2})), images, 10); }),
            "'" + (dir_ / "flat").string() + "' should hold images [count, rows, cols], it has 1 dimensions");
}

TEST_F(Idx, FindsGzippedFiles) {
  write("t10k-labels-idx1-ubyte.gz", idx({1}, {3}), true);
  EXPECT_EQ(findIdxFile(dir_.string(), "t10k-labels-idx1-ubyte"),
            (dir_ / "t10k-labels-idx1-ubyte.gz").string());
  EXPECT_EQ(errorOf([&] { findIdxFile(dir_.string(), "train-images-idx3-ubyte"); }),
            "no 'train-images-idx3-ubyte' (or 'train-images-idx3-ubyte.gz') in '" + dir_.string() + "'");
}

} // namespace
} // namespace netc::rt
