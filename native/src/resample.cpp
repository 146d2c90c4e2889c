#include "resample.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <opencv2/imgproc.hpp>

namespace quasar {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

struct Filter {
    double (*fn)(double);
    double support;
};

double box_filter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }
double bilinear_filter(double x) {
    x = std::fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}
double bicubic_filter(double x) {
    const double a = -0.5;
    x = std::fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

struct Coeffs {
    int ksize = 0;
    std::vector<int> bounds;  // (xmin, count) per output pixel
    std::vector<int> kk;      // fixed point, ksize per output pixel
};

// Weights of each output pixel over the input pixels it sees; in0/in1: the source box (whole image here).
Coeffs precompute(int in_size, double in0, double in1, int out_size, const Filter& f) {
    double scale = (in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f.support * filterscale;
    Coeffs c;
    c.ksize = int(std::ceil(support)) * 2 + 1;
    c.bounds.resize(size_t(out_size) * 2);
    c.kk.assign(size_t(out_size) * size_t(c.ksize), 0);
    std::vector<double> k(static_cast<size_t>(c.ksize));
    for (int xx = 0; xx < out_size; ++xx) {
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = int(center - support + 0.5);  // truncation, as the C cast does
        if (xmin < 0) xmin = 0;
        int xmax = int(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; ++x) {
            double w = f.fn((x + xmin - center + 0.5) * ss);
            k[size_t(x)] = w;
            ww += w;
        }
        int* out = &c.kk[size_t(xx) * size_t(c.ksize)];
        for (int x = 0; x < xmax; ++x) {
            double v = ww != 0.0 ? k[size_t(x)] / ww : k[size_t(x)];
            out[x] = v < 0 ? int(-0.5 + v * (1 << kPrecisionBits)) : int(0.5 + v * (1 << kPrecisionBits));
        }
        c.bounds[size_t(xx) * 2] = xmin;
        c.bounds[size_t(xx) * 2 + 1] = xmax;
    }
    return c;
}

inline uint8_t clip8(int v) {
    v >>= kPrecisionBits;  // arithmetic shift, as Pillow's table lookup of in >> PRECISION_BITS
    return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

// out rows y: source row y + row0, horizontal convolution.
void horizontal(const cv::Mat& src, cv::Mat& dst, int row0, const Coeffs& c) {
    const int cn = src.channels();
    for (int y = 0; y < dst.rows; ++y) {
        const uint8_t* in = src.ptr<uint8_t>(y + row0);
        uint8_t* out = dst.ptr<uint8_t>(y);
        for (int xx = 0; xx < dst.cols; ++xx) {
            int xmin = c.bounds[size_t(xx) * 2], xmax = c.bounds[size_t(xx) * 2 + 1];
            const int* k = &c.kk[size_t(xx) * size_t(c.ksize)];
            for (int ch = 0; ch < cn; ++ch) {
                int ss = 1 << (kPrecisionBits - 1);
                const uint8_t* p = in + size_t(xmin) * size_t(cn) + size_t(ch);
                for (int x = 0; x < xmax; ++x) ss += int(p[size_t(x) * size_t(cn)]) * k[x];
                out[size_t(xx) * size_t(cn) + size_t(ch)] = clip8(ss);
            }
        }
    }
}

void vertical(const cv::Mat& src, cv::Mat& dst, const Coeffs& c, int row_shift) {
    const int cn = src.channels(), width = dst.cols * cn;
    std::vector<int> acc(static_cast<size_t>(width));
    for (int yy = 0; yy < dst.rows; ++yy) {
        int ymin = c.bounds[size_t(yy) * 2] - row_shift, ymax = c.bounds[size_t(yy) * 2 + 1];
        const int* k = &c.kk[size_t(yy) * size_t(c.ksize)];
        std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
        for (int y = 0; y < ymax; ++y) {
            const uint8_t* in = src.ptr<uint8_t>(ymin + y);
            const int w = k[y];
            for (int x = 0; x < width; ++x) acc[size_t(x)] += int(in[x]) * w;
        }
        uint8_t* out = dst.ptr<uint8_t>(yy);
        for (int x = 0; x < width; ++x) out[x] = clip8(acc[size_t(x)]);
    }
}

// Pillow's NEAREST resize: a scaling transform sampling at positions accumulated from the first
// pixel centre (x0 = scale / 2, then += scale: in floating point, as Pillow accumulates them).
cv::Mat nearest(const cv::Mat& src, int width, int height) {
    cv::Mat dst(height, width, src.type());
    const int cn = src.channels();
    const double sx = double(src.cols) / width, sy = double(src.rows) / height;
    std::vector<int> xs(static_cast<size_t>(width));
    double xo = sx * 0.5;
    for (int x = 0; x < width; ++x, xo += sx) xs[size_t(x)] = std::min(src.cols - 1, int(xo));
    double yo = sy * 0.5;
    for (int y = 0; y < height; ++y, yo += sy) {
        const uint8_t* in = src.ptr<uint8_t>(std::min(src.rows - 1, int(yo)));
        uint8_t* out = dst.ptr<uint8_t>(y);
        for (int x = 0; x < width; ++x)
            for (int ch = 0; ch < cn; ++ch) out[size_t(x) * size_t(cn) + size_t(ch)] = in[size_t(xs[size_t(x)]) * size_t(cn) + size_t(ch)];
    }
    return dst;
}

}  // namespace

cv::Mat pil_resize(const cv::Mat& src, int width, int height, const std::string& interpolation) {
    CV_Assert(src.depth() == CV_8U && width > 0 && height > 0);
    if (interpolation == "nearest") return nearest(src, width, height);
    Filter f = interpolation == "bilinear" ? Filter{bilinear_filter, 1.0}
             : interpolation == "area"     ? Filter{box_filter, 0.5}
                                           : Filter{bicubic_filter, 2.0};
    const bool need_h = width != src.cols, need_v = height != src.rows;
    Coeffs ch = precompute(src.cols, 0.0, double(src.cols), width, f);
    Coeffs cv_ = precompute(src.rows, 0.0, double(src.rows), height, f);
    if (need_h && need_v && height < src.rows && (src.rows - height) > 2 * (src.cols - width)) {
        // Pillow >= 13 runs the vertical pass first when the height shrinks much more than the width
        // (measured against Pillow 13.0: exact on every size tried, see native/tests/resample_parity.py).
        cv::Mat tmp(height, src.cols, src.type());
        vertical(src, tmp, cv_, 0);
        cv::Mat dst(height, width, src.type());
        horizontal(tmp, dst, 0, ch);
        return dst;
    }
    int first = cv_.bounds[0];
    int last = cv_.bounds[size_t(height) * 2 - 2] + cv_.bounds[size_t(height) * 2 - 1];
    cv::Mat cur = src;
    int shift = 0;
    if (need_h) {
        cv::Mat tmp(last - first, width, src.type());
        horizontal(src, tmp, first, ch);
        cur = tmp;
        shift = first;
    }
    if (!need_v) return need_h ? cur : src.clone();
    cv::Mat dst(height, cur.cols, src.type());
    vertical(cur, dst, cv_, shift);
    return dst;
}

cv::Mat resize_image(const cv::Mat& src, int width, int height, const std::string& interpolation, const std::string& resampler) {
    if (src.cols == width && src.rows == height) return src;
    if (resampler == "pil") return pil_resize(src, width, height, interpolation);
    cv::Mat dst;
    if (height <= src.rows && width <= src.cols) {
        cv::resize(src, dst, cv::Size(width, height), 0, 0, cv::INTER_AREA);
    } else {
        int flag = interpolation == "bilinear" ? cv::INTER_LINEAR
                 : interpolation == "area"     ? cv::INTER_AREA
                 : interpolation == "nearest"  ? cv::INTER_NEAREST
                                               : cv::INTER_CUBIC;
        cv::resize(src, dst, cv::Size(width, height), 0, 0, flag);
    }
    return dst;
}

}  // namespace quasar
