// ONNX Runtime backend through its C API (onnxruntime_c_api.h), for dynamic and static graphs on
// the CPU. Opt-in: -DQUASAR_WITH_ONNXRUNTIME=ON with ONNX Runtime's headers and library installed.
// NOT COMPILED OR RUN in the environment this was written in (ONNX Runtime's C headers cannot be
// installed there): see docs/embedding.md.
#include <onnxruntime_c_api.h>

#include <cstring>
#include <mutex>
#include <string>

#include "backend.hpp"
#include "errors.hpp"

namespace quasar {

namespace {

const OrtApi* api() {
    static const OrtApi* a = OrtGetApiBase()->GetApi(ORT_API_VERSION);
    return a;
}

void check(OrtStatus* st, const std::string& path, const char* what) {
    if (!st) return;
    std::string msg = api()->GetErrorMessage(st);
    api()->ReleaseStatus(st);
    throw Error(QUASAR_ERR_BACKEND, one_line(path + ": ONNX Runtime " + what + " failed: " + msg));
}

class OrtBackend : public Backend {
public:
    OrtBackend(const ModelInfo& info, const std::string& bytes, const BackendOptions& opts) : Backend(info) {
        const std::string& path = info.path;
        check(api()->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "quasar", &env_), path, "CreateEnv");
        OrtSessionOptions* so = nullptr;
        check(api()->CreateSessionOptions(&so), path, "CreateSessionOptions");
        if (opts.threads > 0) check(api()->SetIntraOpNumThreads(so, opts.threads), path, "SetIntraOpNumThreads");
        check(api()->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL), path, "SetSessionGraphOptimizationLevel");
        OrtStatus* st = api()->CreateSessionFromArray(env_, bytes.data(), bytes.size(), so, &session_);
        api()->ReleaseSessionOptions(so);
        check(st, path, "loading the model");
        check(api()->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &mem_), path, "CreateCpuMemoryInfo");
        const auto& d = info.input_dims;
        fixed_batch_ = d.size() == 4 && d[0] > 0 ? int(d[0]) : 0;
    }
    ~OrtBackend() override {
        if (mem_) api()->ReleaseMemoryInfo(mem_);
        if (session_) api()->ReleaseSession(session_);
        if (env_) api()->ReleaseEnv(env_);
    }
    const char* name() const override { return "onnxruntime"; }
    int max_batch() const override { return fixed_batch_ ? fixed_batch_ : 8; }

    void run(const std::vector<cv::Mat>& batch, float* scores, float* margins) override {
        const std::string& path = info_.path;
        const int n = int(batch.size()), runs = fixed_batch_ ? fixed_batch_ : n;
        const int h = batch[0].rows, w = batch[0].cols;
        const size_t one = size_t(h) * size_t(w) * 3, k = info_.heads.size();
        std::lock_guard<std::mutex> lock(mu_);
        input_.resize(one * size_t(runs));
        for (int i = 0; i < runs; ++i)  // a static graph's short batch is padded by repeating its last image
            std::memcpy(input_.data() + one * size_t(i), batch[size_t(std::min(i, n - 1))].data, one);
        int64_t shape[4] = {runs, h, w, 3};
        OrtValue* in = nullptr;
        check(api()->CreateTensorWithDataAsOrtValue(mem_, input_.data(), input_.size(), shape, 4,
                                                    ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, &in), path, "CreateTensor");
        const char* in_names[] = {"images"};
        const char* out_names[] = {"scores", "margins"};
        OrtValue* outs[2] = {nullptr, nullptr};
        OrtStatus* st = api()->Run(session_, nullptr, in_names, &in, 1, out_names, 2, outs);
        api()->ReleaseValue(in);
        check(st, path, "inference");
        float* dst[2] = {scores, margins};
        std::string err;
        for (int o = 0; o < 2; ++o) {
            OrtTensorTypeAndShapeInfo* ti = nullptr;
            size_t nd = 0;
            int64_t dims[4] = {0, 0, 0, 0};
            float* p = nullptr;
            if (!api()->GetTensorTypeAndShape(outs[o], &ti) && !api()->GetDimensionsCount(ti, &nd) && nd == 2 &&
                !api()->GetDimensions(ti, dims, 2) && dims[0] == runs && dims[1] == int64_t(k) &&
                !api()->GetTensorMutableData(outs[o], reinterpret_cast<void**>(&p))) {
                if (dst[o]) std::memcpy(dst[o], p, sizeof(float) * k * size_t(n));
            } else if (err.empty()) {
                err = path + ": output '" + out_names[o] + "' does not have the shape (" + std::to_string(runs) + ", " +
                      std::to_string(k) + ") of " + std::to_string(k) + " heads";
            }
            if (ti) api()->ReleaseTensorTypeAndShapeInfo(ti);
            api()->ReleaseValue(outs[o]);
        }
        if (!err.empty()) throw Error(QUASAR_ERR_MODEL, err);
    }

private:
    OrtEnv* env_ = nullptr;
    OrtSession* session_ = nullptr;
    OrtMemoryInfo* mem_ = nullptr;
    int fixed_batch_ = 0;
    std::vector<uint8_t> input_;
    std::mutex mu_;
};

}  // namespace

std::string onnxruntime_version() { return OrtGetApiBase()->GetVersionString(); }

std::unique_ptr<Backend> make_onnxruntime_backend(const ModelInfo& info, const std::string& bytes, const BackendOptions& opts) {
    return std::unique_ptr<Backend>(new OrtBackend(info, bytes, opts));
}

}  // namespace quasar
