#include "backend.hpp"

#include <opencv2/core/version.hpp>

#include "errors.hpp"

namespace quasar {

void Backend::check_output(const char* output, const cv::Mat& m, int n) const {
    int k = int(info_.heads.size());
    bool ok = m.dims == 2 && m.size[0] == n && m.size[1] == k && m.type() == CV_32F;
    if (ok) return;
    std::string shape = "(";
    for (int i = 0; i < m.dims; ++i) shape += (i ? ", " : "") + std::to_string(m.size[i]);
    if (m.dims == 1) shape += ",";
    shape += ")";
    std::string heads = "[";
    for (size_t i = 0; i < info_.heads.size(); ++i) heads += (i ? ", '" : "'") + info_.heads[i] + "'";
    heads += "]";
    throw Error(QUASAR_ERR_MODEL, info_.path + ": output '" + output + "' has shape " + shape + ", expected (" +
                                      std::to_string(n) + ", " + std::to_string(k) + ") for " + std::to_string(k) +
                                      " heads " + heads);
}

std::string built_backends() {
    std::string s = std::string("opencv-dnn ") + CV_VERSION;
#ifdef QUASAR_HAVE_TENSORRT
    s += ", tensorrt " + tensorrt_version();
#endif
#ifdef QUASAR_HAVE_ONNXRUNTIME
    s += ", onnxruntime " + onnxruntime_version();
#endif
    return s;
}

std::unique_ptr<Backend> create_backend(const ModelInfo& info, const std::string& bytes, const BackendOptions& opts) {
    const std::string& b = opts.name.empty() ? std::string("auto") : opts.name;
    if (b != "auto" && b != "opencv" && b != "tensorrt" && b != "onnxruntime")
        throw Error(QUASAR_ERR_INVALID_ARGUMENT,
                    "unknown backend '" + b + "'; expected one of ('auto', 'opencv', 'tensorrt', 'onnxruntime')");
    if (info.kind == "engine") {
        if (b != "auto" && b != "tensorrt")
            throw Error(QUASAR_ERR_INVALID_ARGUMENT, info.path + ": a TensorRT engine runs only on the tensorrt backend, not " + b);
#ifdef QUASAR_HAVE_TENSORRT
        return make_tensorrt_backend(info, bytes, opts);
#else
        throw Error(QUASAR_ERR_BACKEND, info.path + ": this build of the QUASAR library has no TensorRT backend "
                                                    "(NvInfer.h and libnvinfer were not found when it was configured)");
#endif
    }
    if (b == "tensorrt")
        throw Error(QUASAR_ERR_INVALID_ARGUMENT, info.path + ": the tensorrt backend needs an engine file (X.engine + X.engine.json)");
    if (b == "onnxruntime") {
#ifdef QUASAR_HAVE_ONNXRUNTIME
        return make_onnxruntime_backend(info, bytes, opts);
#else
        throw Error(QUASAR_ERR_BACKEND, info.path + ": this build of the QUASAR library has no ONNX Runtime backend "
                                                    "(configure with -DQUASAR_WITH_ONNXRUNTIME=ON and ONNX Runtime's C API)");
#endif
    }
#ifdef QUASAR_HAVE_ONNXRUNTIME
    if (b == "auto") return make_onnxruntime_backend(info, bytes, opts);  // runs dynamic graphs too
#endif
    return make_opencv_backend(info, bytes, opts);
}

}  // namespace quasar
