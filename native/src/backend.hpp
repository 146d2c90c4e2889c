// The inference backend contract: a batch of uint8 HxWx3 tensors in, scores and margins [N, K] out.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "contract.hpp"

namespace quasar {

struct BackendOptions {
    std::string name = "auto";  // auto | opencv | tensorrt | onnxruntime
    int threads = 0;            // inference threads (0: the library's default)
    int device = 0;             // CUDA device (tensorrt)
};

class Backend {
public:
    explicit Backend(const ModelInfo& info) : info_(info) {}
    virtual ~Backend() = default;
    virtual const char* name() const = 0;
    // Largest batch one run() takes; static graphs run exactly this many (short batches are padded).
    virtual int max_batch() const = 0;
    // "" if one preprocessed image of h x w can run, else why not (an engine's profile; a static
    // graph's size): such an image fails alone, as a per-file error.
    virtual std::string accepts(int h, int w) const {
        (void)h;
        (void)w;
        return "";
    }
    // ``batch``: up to max_batch() tensors of one shape (accepted by accepts()). Writes n*K floats to each output.
    // Thread-safe. Throws Error(QUASAR_ERR_BACKEND) on failure.
    virtual void run(const std::vector<cv::Mat>& batch, float* scores, float* margins) = 0;

protected:
    // Outputs must be [N, K] with K = number of heads in the metadata (else the file is inconsistent).
    void check_output(const char* output, const cv::Mat& m, int n) const;
    ModelInfo info_;
};

// Which backends this build has (for --version): e.g. "opencv-dnn 4.6.0, tensorrt 10.3.0".
std::string built_backends();
std::unique_ptr<Backend> create_backend(const ModelInfo& info, const std::string& model_bytes, const BackendOptions& opts);

// One constructor per built backend (each in its own file).
std::unique_ptr<Backend> make_opencv_backend(const ModelInfo& info, const std::string& bytes, const BackendOptions& opts);
#ifdef QUASAR_HAVE_TENSORRT
std::unique_ptr<Backend> make_tensorrt_backend(const ModelInfo& info, const std::string& bytes, const BackendOptions& opts);
std::string tensorrt_version();
#endif
#ifdef QUASAR_HAVE_ONNXRUNTIME
std::unique_ptr<Backend> make_onnxruntime_backend(const ModelInfo& info, const std::string& bytes, const BackendOptions& opts);
std::string onnxruntime_version();
#endif

}  // namespace quasar
