// In-memory rewrites of a static graph for OpenCV DNN (the file on disk is not changed).
//
// Opset 11+ Clip keeps its bounds in inputs, which OpenCV 4.6 does not parse; it parses only the
// opset-6 form with min/max attributes (and fuses it into the convolution as ReLU6). Static exports
// write ReLU6 either as Clip (`--clip-form clip`) or as Relu(x) - Relu(x - 6) (`--clip-form relu`,
// three extra passes over every activation map). Both become one attribute-form Clip here: the
// first exactly, the second exact up to the rounding of x - 6 above 6.
#pragma once
#include <string>

namespace quasar {

// Returns the rewritten ModelProto bytes (``rewritten`` = how many patterns were replaced).
std::string rewrite_for_opencv(const std::string& model, int& rewritten);

}  // namespace quasar
