// classify_digits.cpp - the MNIST classifier's C library from C++: the same
// header, a state owned by a unique_ptr, the digits in a vector. Prints what
// classify_digits.c and `./mnist --predict-file IMAGES` print.
//
//   netc examples/mnist.nn --emit=lib -o mnist
//   c++ -std=c++17 -I runtime/include classify_digits.cpp mnist.o libnetc_core.a -o classify_digits_cpp
#include "mnist.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace {

struct Destroy {
  void operator()(mnist_state *s) const { mnist_destroy(s); }
};
using Model = std::unique_ptr<mnist_state, Destroy>;

constexpr int kBatch = 128;

/// The images of an IDX file (at most `limit`), as floats (pixel / 255).
std::vector<float> readImages(const std::string &path, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  unsigned char header[16];
  if (!in.read(reinterpret_cast<char *>(header), sizeof header))
    throw std::runtime_error("'" + path + "' is not an IDX file");
  auto u32 = [&](int at) {
    return uint32_t(header[at]) << 24 | uint32_t(header[at + 1]) << 16 |
           uint32_t(header[at + 2]) << 8 | header[at + 3];
  };
  if (u32(0) != 0x803 || u32(8) * u32(12) != mnist_image_floats)
    throw std::runtime_error("'" + path + "' is not an IDX file of 28x28 images");
  size_t count = std::min<size_t>(u32(4), limit);
  std::vector<unsigned char> pixels(count * mnist_image_floats);
  if (!in.read(reinterpret_cast<char *>(pixels.data()), std::streamsize(pixels.size())))
    throw std::runtime_error("'" + path + "' ends early");
  std::vector<float> images(pixels.size());
  std::transform(pixels.begin(), pixels.end(), images.begin(),
                 [](unsigned char p) { return float(p) / 255.0f; }); // as ToTensor
  return images;
}

/// The softmax probability of class k, in double as the trainer computes it.
double confidence(const float *logits, int k) {
  double max = *std::max_element(logits, logits + mnist_output_floats), sum = 0;
  for (int j = 0; j < mnist_output_floats; ++j)
    sum += std::exp(double(logits[j]) - max);
  return std::exp(double(logits[k]) - max) / sum;
}

} // namespace

int main(int argc, char **argv) try {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " WEIGHTS IMAGES [COUNT]\n";
    return 2;
  }
  Model model(mnist_create(kBatch));
  if (!model)
    throw std::bad_alloc();
  if (mnist_load(model.get(), argv[1]) != 0)
    throw std::runtime_error(mnist_error(model.get()));
  std::vector<float> images = readImages(argv[2], argc > 3 ? std::stoul(argv[3]) : SIZE_MAX);
  int64_t count = int64_t(images.size() / mnist_image_floats);
  std::vector<float> logits(kBatch * mnist_output_floats);
  std::printf("row,predicted,confidence\n");
  for (int64_t begin = 0; begin < count; begin += kBatch) {
    int64_t n = std::min<int64_t>(kBatch, count - begin);
    mnist_predict(model.get(), images.data() + begin * mnist_image_floats, n, logits.data());
    for (int64_t i = 0; i < n; ++i) {
      const float *row = logits.data() + i * mnist_output_floats;
      int best = int(std::max_element(row, row + mnist_output_floats) - row);
      std::printf("%lld,%d,%.6f\n", (long long)(begin + i), best, confidence(row, best));
    }
  }
  return 0;
} catch (const std::exception &e) {
  std::cerr << "error: " << e.what() << '\n';
  return 1;
}
