// From an input (file, encoded bytes or pixels) to the exact uint8 HxWx3 tensor one image
// contributes to a batch (mirrors quasar/runtime/prepare.py): resize and crop are driven by the
// full-resolution upright size even when the JPEG was decoded at a reduced scale.
#pragma once
#include <string>

#include <opencv2/core.hpp>

#include "decode.hpp"
#include "spec.hpp"

namespace quasar {

struct PrepareOptions {
    long long max_pixels = kDefaultMaxPixels;  // < 0: no limit
    bool reduced_decode = true;
    long long max_file_bytes = 1LL << 30;
};

struct Prepared {
    cv::Mat tensor;       // HxWx3 uint8, contiguous, in the spec's channel order
    std::string warning;  // "" or a one-line caveat (a tiny image)
};

class Preparer {
public:
    Preparer(const Spec& spec, const PrepareOptions& opts) : spec_(spec), opts_(opts) {}
    // Each throws ImageError with the reason.
    Prepared file(const std::string& path) const;
    Prepared bytes(const uint8_t* data, size_t n) const;
    Prepared pixels(const uint8_t* px, int width, int height, size_t stride, PixelFormat format) const;
    Prepared finish(const Decoded& d) const;
    const Spec& spec() const { return spec_; }

private:
    Spec spec_;
    PrepareOptions opts_;
};

// Reads a whole regular file; ImageError reasons as quasar/io/files.py read_file.
std::string read_file(const std::string& path, long long max_bytes);
std::string tiny_image_warning(int height, int width, const Spec& spec);

}  // namespace quasar
