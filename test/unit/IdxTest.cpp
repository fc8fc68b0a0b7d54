// IdxTest.cpp - the runtime's IDX reader on good, truncated and lying files,
// plain and gzipped, of every element type; the idx dataset's checks.
#include "data/Idx.h"

#include <gtest/gtest.h>

#include <bit>
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
      std::ofstream(path, std::ios::binary)
          .write(reinterpret_cast<const char *>(bytes.data()),
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

TEST_F(Idx, ReadsEveryElementTypeBigEndian) {
  // i16 -2 and 300, i32 70000, f32 1.5, f64 -0.25
  auto i16 = readIdx(write("i16", idx({2}, {0xff, 0xfe, 0x01, 0x2c}, 0x0b)));
  EXPECT_EQ(i16.at(0), -2);
  EXPECT_EQ(i16.at(1), 300);
  auto i32 = readIdx(write("i32", idx({1}, {0x00, 0x01, 0x11, 0x70}, 0x0c)));
  EXPECT_EQ(i32.at(0), 70000);
  auto f32 = readIdx(write("f32", idx({1, 1}, {0x3f, 0xc0, 0, 0}, 0x0d)));
  EXPECT_EQ(f32.at(0), 1.5);
  EXPECT_EQ(f32.itemSize(), 1);
  auto f64 = readIdx(write("f64", idx({1}, {0xbf, 0xd0, 0, 0, 0, 0, 0, 0}, 0x0e)));
  EXPECT_EQ(f64.at(0), -0.25);
  auto i8 = readIdx(write("i8", idx({1}, {0xff}, 0x09)));
  EXPECT_EQ(i8.at(0), -1);
  // u8 items become floats / 255 (ToTensor); other types as they are.
  auto u8 = readIdx(write("u8", idx({2, 2}, {0, 255, 51, 102})));
  float out[2];
  u8.itemToFloat(1, out);
  EXPECT_EQ(out[0], 51.0f / 255.0f);
  EXPECT_EQ(out[1], 102.0f / 255.0f);
  // f32 items are copied (second item: -2.5, 0.375); i16 converted.
  auto f32s = readIdx(
      write("f32s",
            idx({2, 2}, {0, 0, 0, 0, 0x3f, 0x80, 0, 0, 0xc0, 0x20, 0, 0, 0x3e, 0xc0, 0, 0}, 0x0d)));
  f32s.itemToFloat(1, out);
  EXPECT_EQ(out[0], -2.5f);
  EXPECT_EQ(out[1], 0.375f);
  i16.itemToFloat(0, out);
  EXPECT_EQ(out[0], -2.0f);
}

// Every byte value scales to value / 255's bits, on the AVX2 path (where
// the CPU has it: a multiply corrected by its residual) and the portable one,
// whole vectors and the rest, from any alignment.
TEST(ScaleBytes, EveryValueAsTheDivision) {
  std::vector<uint8_t> bytes(3 * 256 + 11);
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<uint8_t>(i * 7 + i / 256);
  for (bool wide : {true, false})
    for (size_t start : {0, 1, 5}) {
      size_t count = bytes.size() - start;
      std::vector<float> out(count);
      scaleBytes(bytes.data() + start, out.data(), count, wide);
      for (size_t i = 0; i < count; ++i)
        ASSERT_EQ(std::bit_cast<uint32_t>(out[i]),
                  std::bit_cast<uint32_t>(static_cast<float>(bytes[start + i]) / 255.0f))
            << "byte " << int(bytes[start + i]) << (wide ? " (wide)" : "");
    }
}

TEST_F(Idx, DatasetChecksItemsAndLabels) {
  std::vector<FieldLayout> fields = {{"image", "input", false, 4}, {"label", "target", true, 1}};
  auto images = readIdx(write("img", idx({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8})));
  IdxDataset d(fields, images, readIdx(write("lab", idx({2}, {9, 0}))), 10, "img", "lab");
  EXPECT_EQ(d.size(), 2);
  EXPECT_EQ(d.label(0, 1), 9);
  std::vector<float> pixels(4);
  std::vector<int64_t> labels(1);
  void *out[] = {pixels.data(), labels.data()};
  int64_t rows[] = {1};
  d.fill(rows, 1, out);
  EXPECT_EQ(pixels[3], 8.0f / 255.0f);
  EXPECT_EQ(labels[0], 0);
  EXPECT_EQ(errorOf([&] {
              IdxDataset(fields, images, readIdx(write("three", idx({3}, {1, 2, 3}))), 10, "img",
                         "three");
            }),
            "'img' has 2 items but 'three' has 3");
  EXPECT_EQ(
      errorOf([&] {
        IdxDataset(fields, images, readIdx(write("range", idx({2}, {1, 12}))), 10, "img", "range");
      }),
      "'range': label 12 of item 1 is not a class of this model (0 to 9)");
  auto flat = readIdx(write("flat", idx({2}, {1, 2})));
  EXPECT_EQ(errorOf([&] { IdxDataset(fields, flat, flat, 10, "flat", "flat"); }),
            "the items of 'flat' are single values (1 values); the model's 'image' takes 4");
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
  EXPECT_EQ(errorOf([&] {
              readIdx(write("big", idx({1000000000, 28, 28}, {1, 2, 3})));
            }),
            "'" + (dir_ / "big").string() + "' claims more than 16 GiB of data");
  EXPECT_EQ(errorOf([&] {
              readIdx(write("more", idx({100, 28, 28}, {1, 2, 3})));
            }),
            "'" + (dir_ / "more").string() + "' is truncated: it ends inside the data");
  EXPECT_EQ(errorOf([&] {
              readIdx(write("long", idx({2}, {1, 2, 3})));
            }),
            "'" + (dir_ / "long").string() + "' is longer than its header says");
  EXPECT_EQ(errorOf([&] {
              readIdx(write("magic", {1, 2, 8, 1, 0, 0, 0, 1, 5}));
            }),
            "'" + (dir_ / "magic").string() + "' is not an IDX file (bad magic number)");
  EXPECT_EQ(errorOf([&] {
              readIdx(write("type", idx({1}, {0, 0, 0, 0}, 0x07)));
            }),
            "'" + (dir_ / "type").string() +
                "' holds IDX type 0x07, which is none of u8 (0x08), i8 (0x09), i16 (0x0b), "
                "i32 (0x0c), f32 (0x0d), f64 (0x0e)");
}

// 16 MB of zeros gzip to some 16 KB: far beyond any data set's ratio, so
// refused before a byte of it is held (a real 2 MB bomb would take 2 GB).
TEST_F(Idx, RefusesDecompressionBombs) {
  std::string bomb = write("bomb.gz", idx({4096, 4096}, std::vector<uint8_t>(4096 * 4096)), true);
  ASSERT_LT(fs::file_size(bomb), 100000u);
  std::string message = errorOf([&] { readIdx(bomb); });
  EXPECT_NE(message.find("more than 200 times its size: refused as a possible decompression "
                         "bomb"),
            std::string::npos)
      << message;
  // The same data uncompressed is read (it is what the file holds).
  EXPECT_EQ(readIdx(write("plain", idx({4096, 4096}, std::vector<uint8_t>(4096 * 4096)))).dims,
            (std::vector<uint32_t>{4096, 4096}));
}

TEST_F(Idx, FindsGzippedFiles) {
  write("t10k-labels-idx1-ubyte.gz", idx({1}, {3}), true);
  EXPECT_EQ(findIdxFile(dir_.string(), "t10k-labels-idx1-ubyte"),
            (dir_ / "t10k-labels-idx1-ubyte.gz").string());
  EXPECT_EQ(errorOf([&] { findIdxFile(dir_.string(), "train-images-idx3-ubyte"); }),
            "no 'train-images-idx3-ubyte' (or 'train-images-idx3-ubyte.gz') in '" + dir_.string() +
                "'");
}

} // namespace
} // namespace netc::rt
