// Antialiased resampling with Pillow's algorithm (Image.resize with BICUBIC, BILINEAR, BOX or
// NEAREST on an 8-bit RGB image), written from its description: separable, the horizontal pass
// first over the rows the vertical pass needs (vertical first when the height loses more than
// twice as many pixels as the width, as Pillow 13 does), each pass a convolution whose support
// grows with the downscale factor, coefficients normalised to sum 1 and quantised to 22-bit fixed
// point, each pass rounded to 8 bits. Plus the spec's other resampler, OpenCV's INTER_AREA ("opencv_area").
#pragma once
#include <opencv2/core.hpp>
#include <string>

namespace quasar {

// ``src``: CV_8UC3 (any channel order). ``interpolation``: bicubic | bilinear | area | nearest.
cv::Mat pil_resize(const cv::Mat& src, int width, int height, const std::string& interpolation);
// quasar/preprocess.py resize(): returns ``src`` itself when the size is unchanged.
cv::Mat resize_image(const cv::Mat& src, int width, int height, const std::string& interpolation, const std::string& resampler);

}  // namespace quasar
