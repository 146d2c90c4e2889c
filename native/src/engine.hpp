// Engine: one loaded model (validated metadata, preprocessing, backend) behind the C API.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend.hpp"
#include "contract.hpp"
#include "prepare.hpp"

namespace quasar {

struct EngineOptions {
    BackendOptions backend;
    PrepareOptions prepare;
};

class Engine {
public:
    Engine(const std::string& model_path, const EngineOptions& opts);
    const ModelInfo& info() const { return info_; }
    const Preparer& preparer() const { return preparer_; }
    // Decode and preprocess (thread-safe); ImageError if the input cannot be scored, also when the
    // backend cannot take the preprocessed size.
    Prepared prepare_file(const std::string& path) const { return accepted(preparer_.file(path)); }
    Prepared prepare_bytes(const uint8_t* data, size_t n) const { return accepted(preparer_.bytes(data, n)); }
    Prepared prepare_pixels(const uint8_t* px, int w, int h, size_t stride, PixelFormat f) const {
        return accepted(preparer_.pixels(px, w, h, stride, f));
    }
    Backend& backend() { return *backend_; }
    const std::vector<bool>& summary_mask() const { return summary_; }
    const std::vector<bool>& explain_mask() const { return explain_; }
    const std::vector<std::string>& metadata_keys() const { return keys_; }
    // Scores prepared tensors in batches of the backend's size (consecutive images of one shape).
    // ``finite[i]`` is false when image i
    // got a NaN or infinite score or margin.
    void score(const std::vector<cv::Mat>& tensors, float* scores, float* margins, std::vector<bool>& finite);
    std::string non_finite_reason() const;

private:
    struct Loaded {
        ModelInfo info;
        std::string bytes;  // the model file, for the backend to load from memory
    };
    static Loaded load(const std::string& path);
    Prepared accepted(Prepared p) const;
    Engine(Loaded&& loaded, const EngineOptions& opts);
    ModelInfo info_;
    Preparer preparer_;
    std::unique_ptr<Backend> backend_;
    std::vector<bool> summary_, explain_;
    std::vector<std::string> keys_;
};

}  // namespace quasar
