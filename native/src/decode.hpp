// Decoding image bytes into upright RGB uint8 pixels with OpenCV, refusing bad input with a
// one-line reason (mirrors quasar/io/decode.py): EXIF orientation applied (OpenCV for JPEG, read
// here for PNG/WebP/TIFF), alpha composited on white, 16-bit and float samples scaled to 8 bits,
// the decompression-bomb limit checked from the header before decoding, and reduced JPEG
// decoding (libjpeg's 1/2, 1/4, 1/8 DCT scaling) when the result still covers the resize target.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include <opencv2/core.hpp>

namespace quasar {

constexpr long long kDefaultMaxPixels = 178956970;  // PIL.Image.MAX_IMAGE_PIXELS * 2

struct Decoded {
    cv::Mat image;            // upright RGB, CV_8UC3
    int full_h = 0, full_w = 0;  // upright size at full resolution
    int reduction = 1;
};

// (stored height, width) -> the smallest (height, width) the decoded image may have.
using MinShape = std::function<void(int h, int w, int& need_h, int& need_w)>;

void check_pixels(long long width, long long height, long long max_pixels);  // max_pixels < 0: no limit
int choose_reduction(int height, int width, const MinShape& min_shape);
// Throws ImageError with the reason.
Decoded decode(const uint8_t* data, size_t n, long long max_pixels, const MinShape& min_shape);

enum class PixelFormat { RGB, BGR, RGBA, BGRA, GRAY };
// An in-memory 8-bit image with a row stride in bytes (quasar/io/decode.py from_array).
Decoded from_pixels(const uint8_t* pixels, int width, int height, size_t stride, PixelFormat format, long long max_pixels);

// Any 8/16-bit or float OpenCV image (1-4 channels, BGR order for colour) -> RGB uint8.
cv::Mat to_rgb8(const cv::Mat& img, bool bgr);
cv::Mat apply_orientation(const cv::Mat& img, int orientation);

}  // namespace quasar
