/*
 * QUASAR native library: score images with a QUASAR fused model (the same contract, preprocessing
 * and refusals as the Python runtime `quasar score`).
 *
 * A plain C API for bindings (Swift, Kotlin/JNI, Rust, C#): opaque handles, status codes, and a
 * thread-local message for the last failure. No C++ exception ever crosses this boundary.
 *
 *     quasar_scorer* s = NULL;
 *     if (quasar_scorer_create("model-static.onnx", NULL, &s) != QUASAR_OK) { puts(quasar_last_error()); ... }
 *     float scores[16];
 *     if (quasar_score_file(s, "photo.jpg", scores, NULL, 16) == QUASAR_OK) printf("%s %f\n", quasar_head_name(s, 0), scores[0]);
 *     quasar_scorer_destroy(s);
 *
 * Thread safety: one scorer may be used from several threads at once. Decoding and preprocessing
 * run in the calling thread in parallel; inference is serialised per scorer.
 * Strings returned by the library are UTF-8 and stay valid as long as the scorer (or, for
 * quasar_last_error, until the next call on the same thread).
 */
#ifndef QUASAR_H
#define QUASAR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define QUASAR_API __declspec(dllexport)
#else
#define QUASAR_API __attribute__((visibility("default")))
#endif

/* Version of this header's API; bumped on any incompatible change. */
#define QUASAR_API_VERSION 1

typedef enum quasar_status {
    QUASAR_OK = 0,
    QUASAR_ERR_INVALID_ARGUMENT = 1, /* a NULL handle, a bad option, a buffer too small */
    QUASAR_ERR_MODEL = 2,            /* not a QUASAR model, a newer format, inconsistent metadata/graph */
    QUASAR_ERR_BACKEND = 3,          /* the backend is missing from this build or cannot run the model */
    QUASAR_ERR_IMAGE = 4,            /* this input cannot be scored (unreadable, corrupt, too large...) */
    QUASAR_ERR_NON_FINITE = 5,       /* the model gave NaN or infinity: suspect the model file */
    QUASAR_ERR_OUT_OF_MEMORY = 6,
    QUASAR_ERR_INTERNAL = 7
} quasar_status;

typedef enum quasar_pixel_format {
    QUASAR_PIXEL_RGB = 0,  /* 3 bytes per pixel */
    QUASAR_PIXEL_BGR = 1,
    QUASAR_PIXEL_RGBA = 2, /* 4 bytes per pixel; alpha is composited on white */
    QUASAR_PIXEL_BGRA = 3,
    QUASAR_PIXEL_GRAY = 4  /* 1 byte per pixel */
} quasar_pixel_format;

typedef struct quasar_options {
    uint32_t struct_size;    /* sizeof(quasar_options): set by quasar_options_init */
    const char* backend;     /* "auto" (NULL), "opencv", "tensorrt" (engine files), "onnxruntime" */
    int32_t threads;         /* inference threads; 0: the backend's default */
    int32_t device;          /* CUDA device for tensorrt */
    int64_t max_pixels;      /* decompression-bomb limit per image; 0: 178956970 (Pillow's); -1: none */
    int32_t reduced_decode;  /* 1 (default): decode large JPEGs at 1/2..1/8 scale when that still covers the model input */
    int64_t max_file_bytes;  /* files larger than this are refused unread; 0: 1 GiB */
} quasar_options;

typedef struct quasar_scorer quasar_scorer;
typedef struct quasar_image quasar_image; /* a decoded, preprocessed model input */

QUASAR_API uint32_t quasar_api_version(void);
QUASAR_API const char* quasar_version(void);  /* the library (= quasar-engine) version, e.g. "0.1.0" */
QUASAR_API const char* quasar_backends(void); /* the backends built in, e.g. "opencv-dnn 4.6.0" */
/* Message of the last failed call on this thread ("" if none). */
QUASAR_API const char* quasar_last_error(void);
QUASAR_API const char* quasar_status_name(quasar_status status);

QUASAR_API void quasar_options_init(quasar_options* options);

/* Load, validate and cross-check a model (ONNX file, or TensorRT engine with its .json sidecar).
 * options may be NULL (defaults). On failure *out is NULL and quasar_last_error() says why. */
QUASAR_API quasar_status quasar_scorer_create(const char* model_path, const quasar_options* options, quasar_scorer** out);
QUASAR_API void quasar_scorer_destroy(quasar_scorer* scorer);

/* What the model says about itself. */
QUASAR_API size_t quasar_num_heads(const quasar_scorer* scorer);
QUASAR_API const char* quasar_head_name(const quasar_scorer* scorer, size_t index); /* NULL if out of range */
/* 1 if the head is shown by default (neither a part a combine head summarises nor an explanation
 * head), else 0. */
QUASAR_API int quasar_head_is_summary(const quasar_scorer* scorer, size_t index);
/* 1 if the head explains a low score (shown by --explain, whose weakest names the reason): the
 * model's quasar.explain heads, or else the heads a combine head summarises; else 0. */
QUASAR_API int quasar_head_is_explain(const quasar_scorer* scorer, size_t index);
QUASAR_API size_t quasar_metadata_count(const quasar_scorer* scorer);
QUASAR_API const char* quasar_metadata_key(const quasar_scorer* scorer, size_t index);
QUASAR_API const char* quasar_metadata_value(const quasar_scorer* scorer, const char* key); /* NULL if absent */
QUASAR_API const char* quasar_backend_name(const quasar_scorer* scorer);
QUASAR_API int quasar_batch_size(const quasar_scorer* scorer); /* images per inference call */

/* Score one input. scores (and margins, if not NULL) receive num_heads floats; capacity is their
 * length in floats. Scores are P(good) in 0..1 per head, higher is better. */
QUASAR_API quasar_status quasar_score_file(quasar_scorer* scorer, const char* path, float* scores, float* margins,
                                           size_t capacity);
QUASAR_API quasar_status quasar_score_buffer(quasar_scorer* scorer, const void* data, size_t size, float* scores,
                                             float* margins, size_t capacity);
/* Raw pixels: width x height, stride bytes per row (0: tightly packed), 8 bits per channel;
 * format is a quasar_pixel_format value (an int32_t, so bindings pass any integer safely). */
QUASAR_API quasar_status quasar_score_pixels(quasar_scorer* scorer, const void* pixels, int32_t width, int32_t height,
                                             size_t stride, int32_t format, float* scores, float* margins,
                                             size_t capacity);

/* Two steps, for pipelines: prepare (decode + preprocess; thread-safe, run it on worker threads),
 * then score a batch of prepared images on one thread. */
QUASAR_API quasar_status quasar_prepare_file(const quasar_scorer* scorer, const char* path, quasar_image** out);
QUASAR_API quasar_status quasar_prepare_buffer(const quasar_scorer* scorer, const void* data, size_t size, quasar_image** out);
QUASAR_API quasar_status quasar_prepare_pixels(const quasar_scorer* scorer, const void* pixels, int32_t width,
                                               int32_t height, size_t stride, int32_t format, quasar_image** out);
/* A one-line caveat about a prepared image (a tiny image scored after upscaling), or NULL. */
QUASAR_API const char* quasar_image_warning(const quasar_image* image);
QUASAR_API void quasar_image_destroy(quasar_image* image);
/* Score n prepared images: scores/margins receive n * num_heads floats (row i = image i); capacity
 * is their length in floats. statuses (optional, n entries) says per image QUASAR_OK or
 * QUASAR_ERR_NON_FINITE; with statuses, the call itself fails only when the batch could not run at all.
 * Returns QUASAR_ERR_INVALID_ARGUMENT when n * num_heads overflows size_t (nothing is read), and, when
 * statuses is NULL and any row is non-finite, QUASAR_ERR_NON_FINITE (every row is still written; the
 * finite ones are valid, the others hold NaN or infinity). */
QUASAR_API quasar_status quasar_score_images(quasar_scorer* scorer, const quasar_image* const* images, size_t n,
                                             float* scores, float* margins, size_t capacity, quasar_status* statuses);

#ifdef __cplusplus
}
#endif

#endif /* QUASAR_H */
