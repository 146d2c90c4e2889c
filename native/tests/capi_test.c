/* The C API from C (no C++ in this file): status codes and messages for bad arguments, models and
 * inputs; the model's heads and metadata; one image scored from a file, from its bytes and from raw
 * pixels in every pixel format and with a row stride; prepared batches; concurrent preparation; with a
 * third model (one that gives non-finite scores), QUASAR_ERR_NON_FINITE from a batch without statuses.
 *
 *     quasar-capi-test MODEL.onnx PHOTO.png [NON_FINITE_MODEL.onnx]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quasar.h"

static int failed = 0, checks = 0;
#define CHECK(cond)                                                                          \
    do {                                                                                     \
        ++checks;                                                                            \
        if (!(cond)) {                                                                       \
            ++failed;                                                                        \
            fprintf(stderr, "%s:%d: FAILED %s (last error: %s)\n", __FILE__, __LINE__, #cond, \
                    quasar_last_error());                                                    \
        }                                                                                    \
    } while (0)

static int contains(const char* s, const char* part) { return s && part && strstr(s, part) != NULL; }

static unsigned char* read_all(const char* path, size_t* n) {
    FILE* f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char* buf = malloc((size_t)size);
    *n = fread(buf, 1, (size_t)size, f);
    fclose(f);
    return buf;
}

static int same(const float* a, const float* b, size_t k) {
    for (size_t i = 0; i < k; ++i)
        if (a[i] != b[i]) return 0;
    return 1;
}

struct job {
    quasar_scorer* s;
    const char* path;
    quasar_image* img;
    quasar_status st;
};

static void* prepare_job(void* arg) {
    struct job* j = arg;
    j->st = quasar_prepare_file(j->s, j->path, &j->img);
    return NULL;
}

/* A batch whose n * num_heads does not fit in size_t is refused before any image is read (the images
 * array here holds two entries, the second NULL: a wrapped product would pass the capacity check). */
static void check_batch_overflow(quasar_scorer* s, const quasar_image* img) {
    const size_t k = quasar_num_heads(s);
    const quasar_image* two[2] = {img, NULL};
    float out[16];
    size_t n = ((size_t)-1) / k + 2; /* n * k wraps round to a small number */
    CHECK(quasar_score_images(s, two, n, out, NULL, 16, NULL) == QUASAR_ERR_INVALID_ARGUMENT);
    CHECK(contains(quasar_last_error(), "overflow"));
}

/* A model that gives NaN: with statuses the batch call succeeds and marks the row; without them the
 * call itself says QUASAR_ERR_NON_FINITE (a caller that asked for no statuses must not get NaN rows). */
static void check_non_finite(const char* model, const char* photo) {
    quasar_scorer* s = NULL;
    CHECK(quasar_scorer_create(model, NULL, &s) == QUASAR_OK && s != NULL);
    if (!s) return;
    quasar_image* img = NULL;
    CHECK(quasar_prepare_file(s, photo, &img) == QUASAR_OK);
    const quasar_image* batch[1] = {img};
    float out[16];
    quasar_status st[1] = {QUASAR_ERR_INTERNAL};
    CHECK(quasar_score_images(s, batch, 1, out, NULL, 16, st) == QUASAR_OK && st[0] == QUASAR_ERR_NON_FINITE);
    CHECK(quasar_score_images(s, batch, 1, out, NULL, 16, NULL) == QUASAR_ERR_NON_FINITE);
    CHECK(contains(quasar_last_error(), "non-finite score"));
    CHECK(quasar_score_file(s, photo, out, NULL, 16) == QUASAR_ERR_NON_FINITE);
    quasar_image_destroy(img);
    quasar_scorer_destroy(s);
}

/* Library facts, refusals at creation; then the scorer every other check uses. */
static quasar_scorer* create_checked(const char* model, const char* photo) {
    CHECK(quasar_api_version() == QUASAR_API_VERSION);
    CHECK(strlen(quasar_version()) > 0);
    CHECK(contains(quasar_backends(), "opencv-dnn"));

    quasar_scorer* s = NULL;
    CHECK(quasar_scorer_create(model, NULL, NULL) == QUASAR_ERR_INVALID_ARGUMENT);
    CHECK(quasar_scorer_create("/nonexistent/model.onnx", NULL, &s) == QUASAR_ERR_MODEL && s == NULL);
    CHECK(strcmp(quasar_last_error(), "/nonexistent/model.onnx: model file not found") == 0);
    CHECK(quasar_scorer_create(photo, NULL, &s) == QUASAR_ERR_MODEL);
    CHECK(contains(quasar_last_error(), "not an ONNX model or TensorRT engine"));
    quasar_options o;
    quasar_options_init(&o);
    o.backend = "tensorrt";
    CHECK(quasar_scorer_create(model, &o, &s) == QUASAR_ERR_INVALID_ARGUMENT);
    CHECK(contains(quasar_last_error(), "the tensorrt backend needs an engine file"));
    o.backend = "opencv";
    o.threads = 2;
    CHECK(quasar_scorer_create(model, &o, &s) == QUASAR_OK && s != NULL);
    if (!s) return NULL;
    CHECK(strcmp(quasar_last_error(), "") == 0);
    return s;
}

static void check_info(quasar_scorer* s) {
    const size_t k = quasar_num_heads(s);
    CHECK(k == 15);  // seven parts of quality (quality.<family>), seven explanation heads, quality
    CHECK(strcmp(quasar_head_name(s, k - 1), "quality") == 0 && quasar_head_name(s, k) == NULL);
    CHECK(strcmp(quasar_head_name(s, 0), "quality.sharpness") == 0 && strcmp(quasar_head_name(s, 7), "sharpness") == 0);
    CHECK(quasar_head_is_summary(s, k - 1) == 1 && quasar_head_is_summary(s, 0) == 0 && quasar_head_is_summary(s, 7) == 0);
    CHECK(quasar_head_is_explain(s, 7) == 1 && quasar_head_is_explain(s, 13) == 1 && quasar_head_is_explain(s, 0) == 0 &&
          quasar_head_is_explain(s, k - 1) == 0 && quasar_head_is_explain(s, k) == 0);
    CHECK(strcmp(quasar_metadata_value(s, "quasar.format"), "quasar-fused-model") == 0);
    CHECK(quasar_metadata_value(s, "no.such.key") == NULL);
    CHECK(quasar_metadata_count(s) >= 11 && quasar_metadata_key(s, quasar_metadata_count(s)) == NULL);
    CHECK(strcmp(quasar_backend_name(s), "opencv") == 0 && quasar_batch_size(s) >= 1);
}

static void check_file_and_buffer(quasar_scorer* s, const char* photo) {
    const size_t k = quasar_num_heads(s);
    float a[16], am[16], b[16];
    CHECK(quasar_score_file(s, photo, a, am, 16) == QUASAR_OK);
    for (size_t i = 0; i < k; ++i) CHECK(a[i] > 0.0f && a[i] < 1.0f);
    size_t n = 0;
    unsigned char* bytes = read_all(photo, &n);
    CHECK(bytes && quasar_score_buffer(s, bytes, n, b, NULL, 16) == QUASAR_OK && same(a, b, k));
    CHECK(quasar_score_buffer(s, bytes, n, b, NULL, k - 1) == QUASAR_ERR_INVALID_ARGUMENT);
    CHECK(quasar_score_buffer(s, bytes, 0, b, NULL, 16) == QUASAR_ERR_IMAGE);
    CHECK(strcmp(quasar_last_error(), "empty file (0 bytes)") == 0);
    CHECK(quasar_score_buffer(s, "<html>!!", 8, b, NULL, 16) == QUASAR_ERR_IMAGE);
    CHECK(strcmp(quasar_last_error(), "not an image: unrecognised file signature b'<html>!!'") == 0);
    CHECK(quasar_score_buffer(s, bytes, n / 2, b, NULL, 16) == QUASAR_ERR_IMAGE);
    CHECK(contains(quasar_last_error(), "corrupt or truncated"));
    CHECK(quasar_score_file(s, "/nonexistent.png", b, NULL, 16) == QUASAR_ERR_IMAGE);
    CHECK(strcmp(quasar_last_error(), "file not found") == 0);
    CHECK(quasar_score_file(NULL, photo, b, NULL, 16) == QUASAR_ERR_INVALID_ARGUMENT);
    free(bytes);
}

/* Raw pixels: the same picture in every layout scores the same; then prepared batches. */
static void check_pixels_and_batches(quasar_scorer* s, const char* photo) {
    const size_t k = quasar_num_heads(s);
    float a[16], b[16], c[16];
    enum { W = 300, H = 200, PAD = 17 };
    unsigned char *rgb = malloc(W * H * 3), *bgr_padded = malloc((W * 3 + PAD) * H), *rgba = malloc(W * H * 4);
    for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) {
            unsigned char r = (unsigned char)(x * 255 / W), g = (unsigned char)(y * 255 / H), bl = (unsigned char)((x * y) % 251);
            unsigned char* p = rgb + (y * W + x) * 3;
            p[0] = r, p[1] = g, p[2] = bl;
            unsigned char* q = bgr_padded + y * (W * 3 + PAD) + x * 3;
            q[0] = bl, q[1] = g, q[2] = r;
            unsigned char* t = rgba + (y * W + x) * 4;
            t[0] = r, t[1] = g, t[2] = bl, t[3] = 255;
        }
    CHECK(quasar_score_pixels(s, rgb, W, H, 0, QUASAR_PIXEL_RGB, a, NULL, 16) == QUASAR_OK);
    CHECK(quasar_score_pixels(s, bgr_padded, W, H, W * 3 + PAD, QUASAR_PIXEL_BGR, b, NULL, 16) == QUASAR_OK && same(a, b, k));
    CHECK(quasar_score_pixels(s, rgba, W, H, W * 4, QUASAR_PIXEL_RGBA, c, NULL, 16) == QUASAR_OK && same(a, c, k));
    CHECK(quasar_score_pixels(s, rgb, W, H, W, QUASAR_PIXEL_RGB, b, NULL, 16) == QUASAR_ERR_IMAGE);
    CHECK(contains(quasar_last_error(), "row stride"));
    CHECK(quasar_score_pixels(s, rgb, W, H, 0, QUASAR_PIXEL_GRAY, b, NULL, 16) == QUASAR_OK);
    CHECK(quasar_score_pixels(s, rgb, 0, H, 0, QUASAR_PIXEL_RGB, b, NULL, 16) == QUASAR_ERR_IMAGE);
    CHECK(quasar_score_pixels(s, rgb, W, H, 0, 42, b, NULL, 16) == QUASAR_ERR_INVALID_ARGUMENT);

    /* Prepared images, scored as a batch, equal the one-by-one scores; a tiny image carries a warning. */
    quasar_image *p1 = NULL, *p2 = NULL, *tiny = NULL;
    CHECK(quasar_prepare_file(s, photo, &p1) == QUASAR_OK && quasar_image_warning(p1) == NULL);
    CHECK(quasar_prepare_pixels(s, rgb, W, H, 0, QUASAR_PIXEL_RGB, &p2) == QUASAR_OK);
    CHECK(quasar_prepare_pixels(s, rgb, 8, 8, W * 3, QUASAR_PIXEL_RGB, &tiny) == QUASAR_OK);
    CHECK(contains(quasar_image_warning(tiny), "tiny image (8x8 px"));
    quasar_image* missing = (quasar_image*)&failed; /* overwritten with NULL on failure */
    CHECK(quasar_prepare_file(s, "/nonexistent.png", &missing) == QUASAR_ERR_IMAGE && missing == NULL);
    const quasar_image* batch[3] = {p1, p2, tiny};
    float out[3 * 16], outm[3 * 16];
    quasar_status st[3] = {QUASAR_ERR_INTERNAL, QUASAR_ERR_INTERNAL, QUASAR_ERR_INTERNAL};
    CHECK(quasar_score_images(s, batch, 3, out, outm, 3 * 16, st) == QUASAR_OK);
    CHECK(st[0] == QUASAR_OK && st[1] == QUASAR_OK && st[2] == QUASAR_OK);
    CHECK(same(out + k, a, k));
    CHECK(quasar_score_images(s, batch, 3, out, outm, 3 * k - 1, st) == QUASAR_ERR_INVALID_ARGUMENT);
    check_batch_overflow(s, p1);
    float one[16];
    CHECK(quasar_score_file(s, photo, one, NULL, 16) == QUASAR_OK && same(out, one, k));
    quasar_image_destroy(p1);
    quasar_image_destroy(p2);
    quasar_image_destroy(tiny);
    free(rgb);
    free(bgr_padded);
    free(rgba);
}

/* Concurrent preparation from several threads gives the same tensors (and scores). */
static void check_threads(quasar_scorer* s, const char* photo) {
    const size_t k = quasar_num_heads(s);
    float one[16];
    CHECK(quasar_score_file(s, photo, one, NULL, 16) == QUASAR_OK);
    struct job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; ++i) {
        jobs[i].s = s, jobs[i].path = photo, jobs[i].img = NULL;
        pthread_create(&th[i], NULL, prepare_job, &jobs[i]);
    }
    for (int i = 0; i < 4; ++i) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; ++i) {
        CHECK(jobs[i].st == QUASAR_OK);
        const quasar_image* one_img[1] = {jobs[i].img};
        float r[16];
        CHECK(quasar_score_images(s, one_img, 1, r, NULL, 16, NULL) == QUASAR_OK && same(r, one, k));
        quasar_image_destroy(jobs[i].img);
    }
}

int main(int argc, char** argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: quasar-capi-test MODEL PHOTO [NON_FINITE_MODEL]\n");
        return 2;
    }
    const char *model = argv[1], *photo = argv[2];
    quasar_scorer* s = create_checked(model, photo);
    if (!s) return 1;
    check_info(s);
    check_file_and_buffer(s, photo);
    check_pixels_and_batches(s, photo);
    check_threads(s, photo);
    quasar_image_destroy(NULL);
    quasar_scorer_destroy(s);
    quasar_scorer_destroy(NULL);
    if (argc == 4) check_non_finite(argv[3], photo);
    printf("capi_test: %d of %d checks passed\n", checks - failed, checks);
    return failed ? 1 : 0;
}
