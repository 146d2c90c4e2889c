// In-memory rewrites of a static graph for OpenCV DNN (the file on disk is not changed).
//
// Static exports write ReLU6 as Relu(x) - Relu(x - 6), because opset 11+ Clip keeps its bounds in
// inputs, which OpenCV 4.6 does not parse. Three extra passes over every activation map cost about
// a third of OpenCV's inference time, and they stop OpenCV from fusing the activation into the
// convolution. This turns each such pattern back into one Clip with min/max attributes (the form
// OpenCV parses into a fused ReLU6), exact where the pattern is exact up to rounding above 6.
#pragma once
#include <string>

namespace quasar {

// Returns the rewritten ModelProto bytes (``rewritten`` = how many patterns were replaced).
std::string rewrite_relu6_for_opencv(const std::string& model, int& rewritten);

}  // namespace quasar
