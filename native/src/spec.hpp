// PreprocessSpec: how an image becomes model input (mirrors quasar/preprocess.py, plus the "fixed"
// policy of static graphs defined in the static-graph contract).
#pragma once
#include <array>
#include <string>

#include "json.hpp"

namespace quasar {

constexpr int kSpecVersion = 2;
constexpr int kMaxAspectRatio = 16;
constexpr int kMinSpecSize = 16;    // quasar/limits.py
constexpr int kMaxSpecSize = 8192;
// The PreprocessSpec default normalisation (quasar/constants.py CLIP_MEAN, CLIP_STD; checked by a test).
constexpr std::array<double, 3> kClipMean{0.48145466, 0.4578275, 0.40821073};
constexpr std::array<double, 3> kClipStd{0.26862954, 0.26130258, 0.27577711};

struct Spec {
    std::string policy = "center_crop";  // center_crop | native | short_side | fixed
    double size = 224;                   // kept as read; check_spec_bounds() insists on integers
    std::string interpolation = "bicubic";
    std::array<double, 3> mean = kClipMean;
    std::array<double, 3> std = kClipStd;
    size_t mean_len = 3, std_len = 3;
    std::string channel_order = "RGB";
    double size_multiple = 1;
    double min_size = 32;
    std::string resampler = "pil";
    int version = kSpecVersion;
    // policy "fixed" only
    int height = 0, width = 0;
    std::string fit = "stretch";  // stretch | crop

    bool fixed_size() const { return policy == "center_crop" || policy == "fixed"; }
    int isize() const { return int(size); }
};

// From the spec JSON (quasar.preprocess); throws std::invalid_argument with Python's reason text.
Spec parse_spec(const std::string& json_text);
// None ("") if the spec's numbers are sane, else the reason (quasar/contract.py check_spec_bounds).
std::string check_spec_bounds(const Spec& spec);

struct Target {
    int rh = 0, rw = 0;      // resize to this
    bool crop = false;
    int top = 0, left = 0;   // then crop ch x cw at (top, left)
    int ch = 0, cw = 0;
};

// The resize (and crop) for an upright image of height x width; throws ImageError for an extreme
// aspect ratio or an empty image (quasar/preprocess.py target_shape).
Target target_shape(int height, int width, const Spec& spec);
int max_resized_side(const Spec& spec);

// Python's round(): nearest, ties to even.
long long py_round(double v);

}  // namespace quasar
