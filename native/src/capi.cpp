// The C API (quasar.h): every entry point catches everything and returns a status code.
#include <cstdint>
#include <cstring>
#include <new>
#include <string>

#include "engine.hpp"
#include "errors.hpp"
#include "quasar.h"

#ifndef QUASAR_VERSION_STRING
#define QUASAR_VERSION_STRING "0.0.0"
#endif

struct quasar_scorer {
    quasar::Engine engine;
    explicit quasar_scorer(const std::string& path, const quasar::EngineOptions& o) : engine(path, o) {}
};

struct quasar_image {
    quasar::Prepared prepared;
};

namespace {

thread_local std::string g_last_error;

quasar_status fail(quasar_status st, const std::string& msg) {
    g_last_error = quasar::one_line(msg);
    return st;
}

template <class F>
quasar_status guarded(F&& f) {
    try {
        g_last_error.clear();
        return f();
    } catch (const quasar::Error& e) {
        return fail(e.code, e.what());
    } catch (const std::bad_alloc&) {
        return fail(QUASAR_ERR_OUT_OF_MEMORY, "out of memory");
    } catch (const cv::Exception& e) {
        return fail(QUASAR_ERR_INTERNAL, std::string("OpenCV error: ") + e.what());
    } catch (const std::exception& e) {
        return fail(QUASAR_ERR_INTERNAL, std::string("internal error: ") + e.what());
    } catch (...) {
        return fail(QUASAR_ERR_INTERNAL, "internal error (unknown exception)");
    }
}

quasar::PixelFormat pixel_format(int32_t f) {
    switch (f) {
        case QUASAR_PIXEL_RGB: return quasar::PixelFormat::RGB;
        case QUASAR_PIXEL_BGR: return quasar::PixelFormat::BGR;
        case QUASAR_PIXEL_RGBA: return quasar::PixelFormat::RGBA;
        case QUASAR_PIXEL_BGRA: return quasar::PixelFormat::BGRA;
        case QUASAR_PIXEL_GRAY: return quasar::PixelFormat::GRAY;
    }
    throw quasar::Error(QUASAR_ERR_INVALID_ARGUMENT, "unknown pixel format " + std::to_string(f) + " (quasar_pixel_format is 0..4)");
}

quasar_status need(bool ok, const char* what) {
    if (!ok) throw quasar::Error(QUASAR_ERR_INVALID_ARGUMENT, what);
    return QUASAR_OK;
}

// Score one prepared tensor into the caller's arrays.
quasar_status score_one(quasar_scorer* s, const quasar::Prepared& p, float* scores, float* margins, size_t capacity) {
    const size_t k = s->engine.info().heads.size();
    need(capacity >= k, "output arrays hold fewer floats than the model has heads (quasar_num_heads)");
    std::vector<bool> finite;
    std::vector<float> sc(k), mg(k);
    s->engine.score({p.tensor}, sc.data(), mg.data(), finite);
    if (!finite[0]) return fail(QUASAR_ERR_NON_FINITE, s->engine.non_finite_reason());
    std::memcpy(scores, sc.data(), k * sizeof(float));
    if (margins) std::memcpy(margins, mg.data(), k * sizeof(float));
    return QUASAR_OK;
}

}  // namespace

extern "C" {

uint32_t quasar_api_version(void) { return QUASAR_API_VERSION; }
const char* quasar_version(void) { return QUASAR_VERSION_STRING; }
const char* quasar_backends(void) {
    static const std::string s = quasar::built_backends();
    return s.c_str();
}
const char* quasar_last_error(void) { return g_last_error.c_str(); }

const char* quasar_status_name(quasar_status st) {
    switch (st) {
        case QUASAR_OK: return "ok";
        case QUASAR_ERR_INVALID_ARGUMENT: return "invalid argument";
        case QUASAR_ERR_MODEL: return "model error";
        case QUASAR_ERR_BACKEND: return "backend error";
        case QUASAR_ERR_IMAGE: return "image error";
        case QUASAR_ERR_NON_FINITE: return "non-finite score";
        case QUASAR_ERR_OUT_OF_MEMORY: return "out of memory";
        case QUASAR_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

void quasar_options_init(quasar_options* o) {
    if (!o) return;
    std::memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->reduced_decode = 1;
}

quasar_status quasar_scorer_create(const char* model_path, const quasar_options* options, quasar_scorer** out) {
    if (out) *out = nullptr;
    return guarded([&] {
        need(out != nullptr, "quasar_scorer_create: out is NULL");
        need(model_path != nullptr, "quasar_scorer_create: model_path is NULL");
        quasar_options o;
        quasar_options_init(&o);
        if (options) {
            need(options->struct_size >= offsetof(quasar_options, max_file_bytes) + sizeof(int64_t) ||
                     options->struct_size == 0,
                 "quasar_options.struct_size is wrong; call quasar_options_init first");
            std::memcpy(&o, options, std::min<size_t>(sizeof o, options->struct_size ? options->struct_size : sizeof o));
        }
        quasar::EngineOptions eo;
        eo.backend.name = o.backend ? o.backend : "auto";
        eo.backend.threads = o.threads;
        eo.backend.device = o.device;
        need(o.max_pixels >= -1, "max_pixels must be positive, 0 (default) or -1 (no limit)");
        eo.prepare.max_pixels = o.max_pixels == 0 ? quasar::kDefaultMaxPixels : o.max_pixels;
        eo.prepare.reduced_decode = o.reduced_decode != 0;
        eo.prepare.max_file_bytes = o.max_file_bytes > 0 ? o.max_file_bytes : (1LL << 30);
        *out = new quasar_scorer(model_path, eo);
        return QUASAR_OK;
    });
}

void quasar_scorer_destroy(quasar_scorer* s) { delete s; }

size_t quasar_num_heads(const quasar_scorer* s) { return s ? s->engine.info().heads.size() : 0; }
const char* quasar_head_name(const quasar_scorer* s, size_t i) {
    return s && i < s->engine.info().heads.size() ? s->engine.info().heads[i].c_str() : nullptr;
}
int quasar_head_is_summary(const quasar_scorer* s, size_t i) {
    return s && i < s->engine.summary_mask().size() && s->engine.summary_mask()[i] ? 1 : 0;
}

int quasar_head_is_explain(const quasar_scorer* s, size_t i) {
    return s && i < s->engine.explain_mask().size() && s->engine.explain_mask()[i] ? 1 : 0;
}
size_t quasar_metadata_count(const quasar_scorer* s) { return s ? s->engine.metadata_keys().size() : 0; }
const char* quasar_metadata_key(const quasar_scorer* s, size_t i) {
    return s && i < s->engine.metadata_keys().size() ? s->engine.metadata_keys()[i].c_str() : nullptr;
}
const char* quasar_metadata_value(const quasar_scorer* s, const char* key) {
    if (!s || !key) return nullptr;
    const auto& m = s->engine.info().metadata;
    auto it = m.find(key);
    return it == m.end() ? nullptr : it->second.c_str();
}
const char* quasar_backend_name(const quasar_scorer* s) {
    return s ? const_cast<quasar_scorer*>(s)->engine.backend().name() : nullptr;
}
int quasar_batch_size(const quasar_scorer* s) { return s ? const_cast<quasar_scorer*>(s)->engine.backend().max_batch() : 0; }

quasar_status quasar_score_file(quasar_scorer* s, const char* path, float* scores, float* margins, size_t capacity) {
    return guarded([&] {
        need(s && path && scores, "quasar_score_file: NULL argument");
        return score_one(s, s->engine.prepare_file(path), scores, margins, capacity);
    });
}

quasar_status quasar_score_buffer(quasar_scorer* s, const void* data, size_t size, float* scores, float* margins,
                                  size_t capacity) {
    return guarded([&] {
        need(s && (data || size == 0) && scores, "quasar_score_buffer: NULL argument");
        return score_one(s, s->engine.prepare_bytes(static_cast<const uint8_t*>(data), size), scores, margins, capacity);
    });
}

quasar_status quasar_score_pixels(quasar_scorer* s, const void* pixels, int32_t width, int32_t height, size_t stride,
                                  int32_t format, float* scores, float* margins, size_t capacity) {
    return guarded([&] {
        need(s && pixels && scores, "quasar_score_pixels: NULL argument");
        return score_one(s, s->engine.prepare_pixels(static_cast<const uint8_t*>(pixels), width, height, stride, pixel_format(format)),
                         scores, margins, capacity);
    });
}

quasar_status quasar_prepare_file(const quasar_scorer* s, const char* path, quasar_image** out) {
    if (out) *out = nullptr;
    return guarded([&] {
        need(s && path && out, "quasar_prepare_file: NULL argument");
        *out = new quasar_image{s->engine.prepare_file(path)};
        return QUASAR_OK;
    });
}

quasar_status quasar_prepare_buffer(const quasar_scorer* s, const void* data, size_t size, quasar_image** out) {
    if (out) *out = nullptr;
    return guarded([&] {
        need(s && (data || size == 0) && out, "quasar_prepare_buffer: NULL argument");
        *out = new quasar_image{s->engine.prepare_bytes(static_cast<const uint8_t*>(data), size)};
        return QUASAR_OK;
    });
}

quasar_status quasar_prepare_pixels(const quasar_scorer* s, const void* pixels, int32_t width, int32_t height, size_t stride,
                                    int32_t format, quasar_image** out) {
    if (out) *out = nullptr;
    return guarded([&] {
        need(s && pixels && out, "quasar_prepare_pixels: NULL argument");
        *out = new quasar_image{
            s->engine.prepare_pixels(static_cast<const uint8_t*>(pixels), width, height, stride, pixel_format(format))};
        return QUASAR_OK;
    });
}

const char* quasar_image_warning(const quasar_image* img) {
    return img && !img->prepared.warning.empty() ? img->prepared.warning.c_str() : nullptr;
}

void quasar_image_destroy(quasar_image* img) { delete img; }

quasar_status quasar_score_images(quasar_scorer* s, const quasar_image* const* images, size_t n, float* scores,
                                  float* margins, size_t capacity, quasar_status* statuses) {
    return guarded([&] {
        need(s && (images || n == 0) && (scores || n == 0), "quasar_score_images: NULL argument");
        const size_t k = s->engine.info().heads.size();
        need(k == 0 || n <= SIZE_MAX / k, "quasar_score_images: n * num_heads overflows size_t");
        need(capacity >= n * k, "output arrays hold fewer than n * num_heads floats");
        std::vector<cv::Mat> tensors;
        for (size_t i = 0; i < n; ++i) {
            need(images[i] != nullptr, "quasar_score_images: a NULL image");
            tensors.push_back(images[i]->prepared.tensor);
        }
        std::vector<bool> finite;
        s->engine.score(tensors, scores, margins, finite);
        bool all_finite = true;
        for (size_t i = 0; i < n; ++i) {
            if (statuses) statuses[i] = finite[i] ? QUASAR_OK : QUASAR_ERR_NON_FINITE;
            all_finite = all_finite && finite[i];
        }
        if (all_finite) return QUASAR_OK;
        g_last_error = s->engine.non_finite_reason();
        return statuses ? QUASAR_OK : QUASAR_ERR_NON_FINITE;  // no statuses: the call itself reports the rows
    });
}

}  // extern "C"
