// TensorRT backend: a serialized engine X.engine with its sidecar X.engine.json (written by
// `quasar export tensorrt`). Built only when NvInfer.h and libnvinfer are found at configure time.
// The same checks as the Python runtime before TensorRT sees the bytes: the engine's sha256 against
// the sidecar, and the TensorRT version, GPU name and compute capability it was built for.
// NOT COMPILED OR RUN in the environment this was written in (no TensorRT, no GPU): see docs/embedding.md.
#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <cstring>
#include <mutex>
#include <string>

#include "backend.hpp"
#include "errors.hpp"
#include "sha256.hpp"

namespace quasar {

std::string tensorrt_version() {
    return std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR) + "." + std::to_string(NV_TENSORRT_PATCH);
}

namespace {

class Logger : public nvinfer1::ILogger {
public:
    void log(Severity severity, const char* msg) noexcept override {
        if (severity <= Severity::kERROR) last = msg;
    }
    std::string last;
};

Error cuda_error(const std::string& path, const char* what, cudaError_t e) {
    return Error(QUASAR_ERR_BACKEND, path + ": CUDA " + what + " failed: " + cudaGetErrorString(e));
}

// The sidecar's TensorRT version matches when major.minor.patch agree ("10.3.0" or "10.3.0.26").
bool same_trt_version(const std::string& built, const std::string& here) {
    return built == here || built.rfind(here + ".", 0) == 0;
}

class TensorRtBackend : public Backend {
public:
    TensorRtBackend(const ModelInfo& info, const std::string& bytes, const BackendOptions& opts) : Backend(info) {
        const std::string& path = info.path;
        Json side = read_engine_sidecar(path);
        Sha256 h;
        h.update(bytes.data(), bytes.size());
        const Json* sha = side.find("engine_sha256");
        if (!sha || sha->kind != Json::String || sha->str != h.hexdigest())
            throw Error(QUASAR_ERR_MODEL, path + ": the engine does not match its sidecar (sha256 differs); rebuild it");
        cudaError_t e = cudaSetDevice(opts.device);
        if (e != cudaSuccess) throw cuda_error(path, "cudaSetDevice", e);
        cudaDeviceProp prop;
        e = cudaGetDeviceProperties(&prop, opts.device);
        if (e != cudaSuccess) throw cuda_error(path, "cudaGetDeviceProperties", e);
        std::map<std::string, std::string> platform = {
            {"tensorrt_version", tensorrt_version()},
            {"gpu_name", prop.name},
            {"compute_capability", std::to_string(prop.major) + "." + std::to_string(prop.minor)}};
        const Json* built = side.find("tensorrt_version");
        if (built && built->kind == Json::String && same_trt_version(built->str, platform["tensorrt_version"]))
            platform["tensorrt_version"] = built->str;
        auto problems = sidecar_mismatches(side, platform, true);
        if (!problems.empty()) {
            std::string msg = path + " was built elsewhere; rebuild it here (quasar export tensorrt): ";
            for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
            throw Error(QUASAR_ERR_MODEL, one_line(msg));
        }
        runtime_ = nvinfer1::createInferRuntime(logger_);
        engine_ = runtime_ ? runtime_->deserializeCudaEngine(bytes.data(), bytes.size()) : nullptr;
        if (!engine_)
            throw Error(QUASAR_ERR_BACKEND, path + ": TensorRT cannot deserialize this engine (built with another TensorRT "
                                                   "version or for another GPU?) " + logger_.last);
        check_io();
        nvinfer1::Dims lo = engine_->getProfileShape("images", 0, nvinfer1::OptProfileSelector::kMIN);
        nvinfer1::Dims hi = engine_->getProfileShape("images", 0, nvinfer1::OptProfileSelector::kMAX);
        for (int i = 0; i < 4; ++i) {
            lo_[i] = int(lo.d[i]);
            hi_[i] = int(hi.d[i]);
        }
        context_ = engine_->createExecutionContext();
        if (!context_) throw Error(QUASAR_ERR_BACKEND, path + ": TensorRT cannot create an execution context");
        const size_t k = info.heads.size();
        in_bytes_ = size_t(hi_[0]) * size_t(hi_[1]) * size_t(hi_[2]) * 3;
        out_bytes_ = size_t(hi_[0]) * k * sizeof(float);
        if ((e = cudaStreamCreate(&stream_)) != cudaSuccess) throw cuda_error(path, "cudaStreamCreate", e);
        if ((e = cudaMalloc(&d_in_, in_bytes_)) != cudaSuccess || (e = cudaMalloc(&d_scores_, out_bytes_)) != cudaSuccess ||
            (e = cudaMalloc(&d_margins_, out_bytes_)) != cudaSuccess || (e = cudaMallocHost(&h_in_, in_bytes_)) != cudaSuccess)
            throw cuda_error(path, "allocation", e);
    }

    ~TensorRtBackend() override {
        if (d_in_) cudaFree(d_in_);
        if (d_scores_) cudaFree(d_scores_);
        if (d_margins_) cudaFree(d_margins_);
        if (h_in_) cudaFreeHost(h_in_);
        if (stream_) cudaStreamDestroy(stream_);
        delete context_;
        delete engine_;
        delete runtime_;
    }

    const char* name() const override { return "tensorrt"; }
    int max_batch() const override { return hi_[0]; }

    std::string accepts(int h, int w) const override {
        if (h < lo_[1] || h > hi_[1] || w < lo_[2] || w > hi_[2])
            return "preprocessed size " + std::to_string(h) + "x" + std::to_string(w) + " is outside the engine's profile (" +
                   std::to_string(lo_[1]) + "x" + std::to_string(lo_[2]) + " to " + std::to_string(hi_[1]) + "x" +
                   std::to_string(hi_[2]) + "); rebuild the engine for larger inputs";
        return "";
    }

    void run(const std::vector<cv::Mat>& batch, float* scores, float* margins) override {
        const int n = int(batch.size());
        if (n < 1 || n > hi_[0]) throw Error(QUASAR_ERR_INVALID_ARGUMENT, "batch of " + std::to_string(n) + " images; the engine takes up to " + std::to_string(hi_[0]));
        const int h = batch[0].rows, w = batch[0].cols;
        const size_t one = size_t(h) * size_t(w) * 3, k = info_.heads.size();
        std::lock_guard<std::mutex> lock(mu_);
        for (int i = 0; i < n; ++i) std::memcpy(static_cast<uint8_t*>(h_in_) + one * size_t(i), batch[size_t(i)].data, one);
        const std::string& path = info_.path;
        cudaError_t e = cudaMemcpyAsync(d_in_, h_in_, one * size_t(n), cudaMemcpyHostToDevice, stream_);
        if (e != cudaSuccess) throw cuda_error(path, "copy to the device", e);
        nvinfer1::Dims4 dims(n, h, w, 3);
        if (!context_->setInputShape("images", dims) || !context_->setTensorAddress("images", d_in_) ||
            !context_->setTensorAddress("scores", d_scores_) || !context_->setTensorAddress("margins", d_margins_) ||
            !context_->enqueueV3(stream_))
            throw Error(QUASAR_ERR_BACKEND, path + ": TensorRT failed to enqueue a batch of shape (" + std::to_string(n) + ", " +
                                                std::to_string(h) + ", " + std::to_string(w) + ", 3) " + logger_.last);
        if ((e = cudaMemcpyAsync(scores, d_scores_, size_t(n) * k * sizeof(float), cudaMemcpyDeviceToHost, stream_)) != cudaSuccess)
            throw cuda_error(path, "copy from the device", e);
        if (margins && (e = cudaMemcpyAsync(margins, d_margins_, size_t(n) * k * sizeof(float), cudaMemcpyDeviceToHost, stream_)) != cudaSuccess)
            throw cuda_error(path, "copy from the device", e);
        if ((e = cudaStreamSynchronize(stream_)) != cudaSuccess) throw cuda_error(path, "inference", e);
        nvinfer1::Dims out = context_->getTensorShape("scores");
        if (out.nbDims != 2 || out.d[0] != n || out.d[1] != int64_t(k))
            throw Error(QUASAR_ERR_MODEL, path + ": output 'scores' has another shape than (" + std::to_string(n) + ", " +
                                              std::to_string(k) + ")");
    }

private:
    void check_io() {
        const std::string& path = info_.path;
        struct Want {
            const char* name;
            nvinfer1::TensorIOMode mode;
            nvinfer1::DataType type;
        };
        for (const Want& w : {Want{"images", nvinfer1::TensorIOMode::kINPUT, nvinfer1::DataType::kUINT8},
                              Want{"scores", nvinfer1::TensorIOMode::kOUTPUT, nvinfer1::DataType::kFLOAT},
                              Want{"margins", nvinfer1::TensorIOMode::kOUTPUT, nvinfer1::DataType::kFLOAT}}) {
            if (engine_->getTensorIOMode(w.name) != w.mode || engine_->getTensorDataType(w.name) != w.type)
                throw Error(QUASAR_ERR_MODEL, path + ": engine tensor '" + w.name + "' is missing or has another mode or type");
        }
        nvinfer1::Dims s = engine_->getTensorShape("scores");
        if (s.nbDims != 2 || (s.d[1] != -1 && s.d[1] != int64_t(info_.heads.size())))
            throw Error(QUASAR_ERR_MODEL, path + ": engine outputs another number of columns than the sidecar's " +
                                              std::to_string(info_.heads.size()) + " heads");
    }

    Logger logger_;
    nvinfer1::IRuntime* runtime_ = nullptr;
    nvinfer1::ICudaEngine* engine_ = nullptr;
    nvinfer1::IExecutionContext* context_ = nullptr;
    cudaStream_t stream_ = nullptr;
    void *d_in_ = nullptr, *d_scores_ = nullptr, *d_margins_ = nullptr, *h_in_ = nullptr;
    size_t in_bytes_ = 0, out_bytes_ = 0;
    int lo_[4] = {1, 1, 1, 3}, hi_[4] = {1, 1, 1, 3};
    std::mutex mu_;
};

}  // namespace

std::unique_ptr<Backend> make_tensorrt_backend(const ModelInfo& info, const std::string& bytes, const BackendOptions& opts) {
    return std::unique_ptr<Backend>(new TensorRtBackend(info, bytes, opts));
}

}  // namespace quasar
