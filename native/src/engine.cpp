#include "engine.hpp"

#include <cmath>

#include "errors.hpp"

namespace quasar {

namespace {

ModelInfo load_checked(const std::string& path, std::string& bytes) {
    ModelInfo info = load_model_info(path, &bytes);
    if (info.kind == "onnx") check_input_shape(info);
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
    explain_ = info_.explain_mask();
    for (const auto& kv : info_.metadata) keys_.push_back(kv.first);
}

std::string Engine::non_finite_reason() const {
    return "the model gave a non-finite score (NaN or infinity); suspect the model file " + info_.path +
           " (corrupted weights or logit scale), not the image";
}

Prepared Engine::accepted(Prepared p) const {
    std::string reason = backend_->accepts(p.tensor.rows, p.tensor.cols);
    if (!reason.empty()) throw ImageError(reason);
    return p;
}

void Engine::score(const std::vector<cv::Mat>& tensors, float* scores, float* margins, std::vector<bool>& finite) {
    const size_t k = info_.heads.size(), n = tensors.size(), bs = size_t(backend_->max_batch());
    finite.assign(n, true);
    std::vector<float> m_tmp;
    if (!margins) {
        m_tmp.resize(n * k);
        margins = m_tmp.data();
    }
    for (size_t start = 0; start < n;) {
        size_t m = 1;  // a run of images of one shape, at most the backend's batch
        while (start + m < n && m < bs && tensors[start + m].size == tensors[start].size) ++m;
        for (size_t i = start; i < start + m; ++i) {
            std::string reason = backend_->accepts(tensors[i].rows, tensors[i].cols);
            if (!reason.empty()) throw Error(QUASAR_ERR_INVALID_ARGUMENT, reason);
        }
        std::vector<cv::Mat> batch(tensors.begin() + long(start), tensors.begin() + long(start + m));
        backend_->run(batch, scores + start * k, margins + start * k);
        start += m;
    }
    for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j < k; ++j)
            if (!std::isfinite(scores[i * k + j]) || !std::isfinite(margins[i * k + j])) finite[i] = false;
}

}  // namespace quasar
