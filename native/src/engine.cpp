#include "engine.hpp"

#include <cmath>

#include "errors.hpp"

namespace quasar {

namespace {

ModelInfo load_checked(const std::string& path, std::string& bytes) {
    ModelInfo info = load_model_info(path, &bytes);
    // A static graph's input must be the size its preprocessing produces.
    const Spec& s = info.spec;
    const auto& d = info.input_dims;
    if (info.kind == "onnx" && !info.dynamic_size && d.size() == 4 && d[1] > 0 && d[2] > 0) {
        int want_h = s.policy == "fixed" ? s.height : s.isize(), want_w = s.policy == "fixed" ? s.width : s.isize();
        if (d[1] != want_h || d[2] != want_w)
            throw Error(QUASAR_ERR_MODEL, one_line(path + ": the graph's input is " + std::to_string(d[1]) + "x" + std::to_string(d[2]) +
                                                   " but quasar.preprocess makes " + std::to_string(want_h) + "x" +
                                                   std::to_string(want_w) + "; refusing this model (re-export it with `quasar export onnx`)"));
    }
    return info;
}

}  // namespace

Engine::Engine(const std::string& path, const EngineOptions& opts) : Engine(load(path), opts) {}

Engine::Loaded Engine::load(const std::string& path) {
    Loaded l;
    l.info = load_checked(path, l.bytes);
    return l;
}

Engine::Engine(Loaded&& l, const EngineOptions& opts)
    : info_(std::move(l.info)), preparer_(info_.spec, opts.prepare), backend_(create_backend(info_, l.bytes, opts.backend)) {
    summary_ = info_.summary_mask();
    for (const auto& kv : info_.metadata) keys_.push_back(kv.first);
}

std::string Engine::non_finite_reason() const {
    return "the model gave a non-finite score (NaN or infinity); suspect the model file " + info_.path +
           " (corrupted weights or logit scale), not the image";
}

void Engine::score(const std::vector<cv::Mat>& tensors, float* scores, float* margins, std::vector<bool>& finite) {
    const size_t k = info_.heads.size(), n = tensors.size(), bs = size_t(backend_->max_batch());
    finite.assign(n, true);
    std::vector<float> m_tmp;
    if (!margins) {
        m_tmp.resize(n * k);
        margins = m_tmp.data();
    }
    for (size_t start = 0; start < n; start += bs) {
        size_t m = std::min(bs, n - start);
        std::vector<cv::Mat> batch(tensors.begin() + long(start), tensors.begin() + long(start + m));
        backend_->run(batch, scores + start * k, margins + start * k);
    }
    for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j < k; ++j)
            if (!std::isfinite(scores[i * k + j]) || !std::isfinite(margins[i * k + j])) finite[i] = false;
}

}  // namespace quasar
