// A thin C++ RAII wrapper over the C API (quasar.h): errors become quasar::Exception.
//
//     quasar::Scorer scorer("model-static.onnx");
//     quasar::Scores s = scorer.score_file("photo.jpg");
//     std::cout << scorer.heads()[0] << " " << s.scores[0] << "\n";
#pragma once
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "quasar.h"

namespace quasar {

class Exception : public std::runtime_error {
public:
    Exception(quasar_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
    quasar_status status() const { return status_; }

private:
    quasar_status status_;
};

inline void check(quasar_status st) {
    if (st != QUASAR_OK) throw Exception(st, quasar_last_error());
}

struct Scores {
    std::vector<float> scores, margins;  // one per head
};

struct Options {
    std::string backend = "auto";
    int threads = 0;
    int device = 0;
    long long max_pixels = 0;  // 0: the default limit; -1: none
    bool reduced_decode = true;
    long long max_file_bytes = 0;
};

// A decoded, preprocessed input (see quasar_prepare_*). Movable, not copyable.
class Image {
public:
    Image() = default;
    explicit Image(quasar_image* p) : p_(p, quasar_image_destroy) {}
    const quasar_image* get() const { return p_.get(); }
    std::string warning() const {
        const char* w = p_ ? quasar_image_warning(p_.get()) : nullptr;
        return w ? w : "";
    }
    explicit operator bool() const { return bool(p_); }

private:
    std::unique_ptr<quasar_image, void (*)(quasar_image*)> p_{nullptr, quasar_image_destroy};
};

class Scorer {
public:
    explicit Scorer(const std::string& model_path, const Options& o = Options()) {
        quasar_options opts;
        quasar_options_init(&opts);
        opts.backend = o.backend.c_str();
        opts.threads = o.threads;
        opts.device = o.device;
        opts.max_pixels = o.max_pixels;
        opts.reduced_decode = o.reduced_decode ? 1 : 0;
        opts.max_file_bytes = o.max_file_bytes;
        quasar_scorer* s = nullptr;
        check(quasar_scorer_create(model_path.c_str(), &opts, &s));
        p_.reset(s);
    }
    quasar_scorer* get() const { return p_.get(); }

    std::vector<std::string> heads() const {
        std::vector<std::string> out;
        for (size_t i = 0; i < quasar_num_heads(p_.get()); ++i) out.emplace_back(quasar_head_name(p_.get(), i));
        return out;
    }
    std::vector<bool> summary_mask() const {
        std::vector<bool> out;
        for (size_t i = 0; i < quasar_num_heads(p_.get()); ++i) out.push_back(quasar_head_is_summary(p_.get(), i) != 0);
        return out;
    }
    std::vector<bool> explain_mask() const {
        std::vector<bool> out;
        for (size_t i = 0; i < quasar_num_heads(p_.get()); ++i) out.push_back(quasar_head_is_explain(p_.get(), i) != 0);
        return out;
    }
    std::string metadata(const std::string& key) const {
        const char* v = quasar_metadata_value(p_.get(), key.c_str());
        return v ? v : "";
    }
    std::vector<std::pair<std::string, std::string>> metadata() const {
        std::vector<std::pair<std::string, std::string>> out;
        for (size_t i = 0; i < quasar_metadata_count(p_.get()); ++i) {
            const char* k = quasar_metadata_key(p_.get(), i);
            out.emplace_back(k, quasar_metadata_value(p_.get(), k));
        }
        return out;
    }
    std::string backend() const { return quasar_backend_name(p_.get()); }
    int batch_size() const { return quasar_batch_size(p_.get()); }

    Scores score_file(const std::string& path) {
        Scores s = blank();
        check(quasar_score_file(p_.get(), path.c_str(), s.scores.data(), s.margins.data(), s.scores.size()));
        return s;
    }
    Scores score_buffer(const void* data, size_t size) {
        Scores s = blank();
        check(quasar_score_buffer(p_.get(), data, size, s.scores.data(), s.margins.data(), s.scores.size()));
        return s;
    }
    Scores score_pixels(const void* px, int width, int height, size_t stride, quasar_pixel_format format) {
        Scores s = blank();
        check(quasar_score_pixels(p_.get(), px, width, height, stride, format, s.scores.data(), s.margins.data(),
                                  s.scores.size()));
        return s;
    }

    // Thread-safe; throws Exception (status QUASAR_ERR_IMAGE for a bad input).
    Image prepare_file(const std::string& path) const {
        quasar_image* img = nullptr;
        check(quasar_prepare_file(p_.get(), path.c_str(), &img));
        return Image(img);
    }
    Image prepare_buffer(const void* data, size_t size) const {
        quasar_image* img = nullptr;
        check(quasar_prepare_buffer(p_.get(), data, size, &img));
        return Image(img);
    }
    // Scores n images; statuses[i] is QUASAR_OK or QUASAR_ERR_NON_FINITE.
    std::vector<Scores> score_images(const std::vector<const Image*>& images, std::vector<quasar_status>* statuses = nullptr) {
        const size_t k = quasar_num_heads(p_.get()), n = images.size();
        std::vector<const quasar_image*> ptrs;
        for (const Image* im : images) ptrs.push_back(im->get());
        std::vector<float> sc(n * k), mg(n * k);
        std::vector<quasar_status> st(n);
        check(quasar_score_images(p_.get(), ptrs.data(), n, sc.data(), mg.data(), sc.size(), st.data()));
        std::vector<Scores> out(n);
        for (size_t i = 0; i < n; ++i) {
            out[i].scores.assign(sc.begin() + long(i * k), sc.begin() + long((i + 1) * k));
            out[i].margins.assign(mg.begin() + long(i * k), mg.begin() + long((i + 1) * k));
        }
        if (statuses) *statuses = st;
        return out;
    }

private:
    Scores blank() const {
        size_t k = quasar_num_heads(p_.get());
        return Scores{std::vector<float>(k), std::vector<float>(k)};
    }
    std::unique_ptr<quasar_scorer, void (*)(quasar_scorer*)> p_{nullptr, quasar_scorer_destroy};
};

}  // namespace quasar
