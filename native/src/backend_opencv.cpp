// OpenCV DNN backend (CPU): loads a static fused graph (fixed [N, H, W, 3] input) from memory.
#include <mutex>

#include <opencv2/core/utility.hpp>
#include <opencv2/dnn.hpp>

#include "backend.hpp"
#include "errors.hpp"
#include "graph_rewrite.hpp"

namespace quasar {

namespace {

class OpenCvBackend : public Backend {
public:
    OpenCvBackend(const ModelInfo& info, const std::string& bytes, const BackendOptions& opts) : Backend(info) {
        const auto& dims = info.input_dims;
        if (info.dynamic_size || dims.size() != 4 || dims[1] <= 0 || dims[2] <= 0)
            throw Error(QUASAR_ERR_BACKEND,
                        info.path + ": OpenCV DNN runs only static graphs (fixed input size); export one with "
                                    "`quasar export onnx --static HxW` (this graph has dynamic_size " +
                            std::string(info.dynamic_size ? "true" : "false") + ")");
        batch_ = dims[0] > 0 ? int(dims[0]) : 1;
        h_ = int(dims[1]);
        w_ = int(dims[2]);
        if (dims[3] != 3) throw Error(QUASAR_ERR_MODEL, info.path + ": the graph's input has " + std::to_string(dims[3]) + " channels, not 3");
        if (opts.threads > 0) cv::setNumThreads(opts.threads);
        try {
            int rewritten = 0;
            const std::string graph = rewrite_for_opencv(bytes, rewritten);
            net_ = cv::dnn::readNetFromONNX(graph.data(), graph.size());
            net_.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
            net_.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
        } catch (const cv::Exception& e) {
            throw Error(QUASAR_ERR_BACKEND, one_line(info.path + ": OpenCV " CV_VERSION " DNN cannot load this graph: " + e.what()));
        } catch (const NotOnnx& e) {
            throw Error(QUASAR_ERR_MODEL, info.path + ": cannot read the graph (" + e.what() + ")");
        }
    }
    const char* name() const override { return "opencv"; }
    int max_batch() const override { return batch_; }
    std::string accepts(int h, int w) const override {
        if (h == h_ && w == w_) return "";
        return "preprocessed size " + std::to_string(h) + "x" + std::to_string(w) + " differs from the graph's fixed " +
               std::to_string(h_) + "x" + std::to_string(w_);
    }

    void run(const std::vector<cv::Mat>& batch, float* scores, float* margins) override {
        const int n = int(batch.size());
        if (n < 1 || n > batch_) throw Error(QUASAR_ERR_INVALID_ARGUMENT, "batch of " + std::to_string(n) + " images; this graph takes 1.." + std::to_string(batch_));
        int sz[4] = {batch_, h_, w_, 3};
        std::lock_guard<std::mutex> lock(mu_);
        input_.create(4, sz, CV_8U);
        const size_t one = size_t(h_) * size_t(w_) * 3;
        for (int i = 0; i < batch_; ++i) {  // a short batch is padded by repeating its last image
            const cv::Mat& t = batch[size_t(std::min(i, n - 1))];
            if (t.rows != h_ || t.cols != w_ || t.type() != CV_8UC3 || !t.isContinuous())
                throw Error(QUASAR_ERR_INVALID_ARGUMENT, "preprocessed image is " + std::to_string(t.rows) + "x" +
                                                             std::to_string(t.cols) + ", the graph takes " +
                                                             std::to_string(h_) + "x" + std::to_string(w_));
            std::memcpy(input_.ptr<uint8_t>() + one * size_t(i), t.data, one);
        }
        std::vector<cv::Mat> outs;
        try {
            net_.setInput(input_, "images");
            net_.forward(outs, std::vector<std::string>{"scores", "margins"});
        } catch (const cv::Exception& e) {
            throw Error(QUASAR_ERR_BACKEND, one_line(info_.path + ": OpenCV DNN inference failed: " + e.what()));
        }
        check_output("scores", outs[0], batch_);
        check_output("margins", outs[1], batch_);
        const size_t k = info_.heads.size();
        std::memcpy(scores, outs[0].ptr<float>(), sizeof(float) * k * size_t(n));
        if (margins) std::memcpy(margins, outs[1].ptr<float>(), sizeof(float) * k * size_t(n));
    }

private:
    cv::dnn::Net net_;
    cv::Mat input_;
    std::mutex mu_;
    int batch_ = 1, h_ = 0, w_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_opencv_backend(const ModelInfo& info, const std::string& bytes, const BackendOptions& opts) {
    return std::unique_ptr<Backend>(new OpenCvBackend(info, bytes, opts));
}

}  // namespace quasar
