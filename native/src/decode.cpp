#include <cstring>
#include "decode.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "errors.hpp"
#include "probe.hpp"

namespace quasar {

namespace {

std::string upper(std::string s) {
    for (auto& c : s) c = char(std::toupper(uint8_t(c)));
    return s;
}

// The useful middle of an OpenCV error ("... error: (-2:Unspecified error) WHY in function ...").
std::string cv_reason(const cv::Exception& e) {
    std::string text = e.what();
    size_t p = text.find("error: (");
    std::string why = text;
    if (p != std::string::npos) {
        size_t close = text.find(')', p);
        if (close != std::string::npos) {
            why = text.substr(close + 1);
            size_t f = why.find(" in function");
            if (f != std::string::npos) why = why.substr(0, f);
        }
    }
    size_t a = why.find_first_not_of(" \t\r\n");
    why = a == std::string::npos ? "" : why.substr(a);
    why = why.substr(0, why.find('\n'));
    if (why.size() > 200) why = why.substr(0, 200);
    return why.empty() ? "error" : why;
}

int ceil_div(int a, int b) { return (a + b - 1) / b; }

Decoded decode_jpeg(const cv::Mat& buf, const uint8_t* data, size_t n, const Header& hd, const MinShape& min_shape) {
    // OpenCV 4.6 returns the decoded part of a cut-off JPEG (libjpeg only warns); OpenCV >= 4.11,
    // which the Python runtime uses, returns nothing. Refuse such a file the way the Python runtime does.
    if (!jpeg_has_eoi(data, n)) throw ImageError("truncated JPEG (no end-of-image marker; the file was cut short)");
    int f = hd.has_size && hd.width && hd.height ? choose_reduction(int(hd.height), int(hd.width), min_shape) : 1;
    int flag = f == 8 ? cv::IMREAD_REDUCED_COLOR_8 : f == 4 ? cv::IMREAD_REDUCED_COLOR_4 : f == 2 ? cv::IMREAD_REDUCED_COLOR_2 : cv::IMREAD_COLOR;
    cv::Mat bgr = cv::imdecode(buf, flag);
    if (bgr.empty()) {
        if (!jpeg_has_eoi(data, n)) throw ImageError("truncated JPEG (no end-of-image marker; the file was cut short)");
        throw ImageError("corrupt JPEG data (libjpeg could not decode it)");
    }
    Decoded d;
    cv::cvtColor(bgr, d.image, cv::COLOR_BGR2RGB);
    d.full_h = d.image.rows;
    d.full_w = d.image.cols;
    if (f == 1 || !(hd.width && hd.height)) return d;
    // OpenCV rotated the reduced image per EXIF; find out whether height and width were swapped.
    int dh = d.image.rows, dw = d.image.cols, H = int(hd.height), W = int(hd.width);
    if (dh == ceil_div(H, f) && dw == ceil_div(W, f)) {
        d.full_h = H;
        d.full_w = W;
    } else if (dh == ceil_div(W, f) && dw == ceil_div(H, f)) {
        d.full_h = W;
        d.full_w = H;
    } else {
        d.full_h = dh * f;
        d.full_w = dw * f;
    }
    d.reduction = f;
    return d;
}

cv::Mat to_uint8(const cv::Mat& img) {
    switch (img.depth()) {
        case CV_8U: return img;
        case CV_16U: {
            cv::Mat out;
            cv::convertScaleAbs(img, out, 255.0 / 65535.0);  // rounds and saturates
            return out;
        }
        case CV_32F:
        case CV_64F:
        case CV_16F: {
            cv::Mat f;
            img.convertTo(f, CV_32F);
            cv::Mat out(f.size(), CV_MAKETYPE(CV_8U, f.channels()));
            const int n = f.cols * f.channels();
            for (int y = 0; y < f.rows; ++y) {
                const float* in = f.ptr<float>(y);
                uint8_t* o = out.ptr<uint8_t>(y);
                for (int x = 0; x < n; ++x) {
                    float v = in[x];
                    if (std::isnan(v)) v = 0.f;
                    float s = v * 255.0f + 0.5f;  // numpy: clip(nan_to_num(x) * 255 + 0.5, 0, 255).astype(uint8)
                    o[x] = s <= 0.f ? 0 : s >= 255.f ? 255 : uint8_t(s);
                }
            }
            return out;
        }
        case CV_8S: throw ImageError("unsupported signed int8 samples");
        case CV_16S: throw ImageError("unsupported signed int16 samples");
        default: throw ImageError(std::string("unsupported sample type ") + (img.depth() == CV_32S ? "int32" : "unknown"));
    }
}

// color * a + 255 * (1 - a) in exact integer arithmetic; ``color`` has 1 or 3 channels.
cv::Mat composite_on_white(const cv::Mat& color, const cv::Mat& alpha) {
    double amin;
    cv::minMaxLoc(alpha, &amin);
    if (amin == 255) return color.clone();
    cv::Mat out(color.size(), color.type());
    const int cn = color.channels();
    for (int y = 0; y < color.rows; ++y) {
        const uint8_t* c = color.ptr<uint8_t>(y);
        const uint8_t* a = alpha.ptr<uint8_t>(y);
        uint8_t* o = out.ptr<uint8_t>(y);
        for (int x = 0; x < color.cols; ++x) {
            unsigned av = a[x];
            for (int k = 0; k < cn; ++k) {
                unsigned v = c[x * cn + k] * av + 255 * (255 - av) + 127;
                o[x * cn + k] = uint8_t(v / 255);
            }
        }
    }
    return out;
}

}  // namespace

void check_pixels(long long width, long long height, long long max_pixels) {
    if (max_pixels >= 0 && width * height > max_pixels) {
        char buf[256];
        std::snprintf(buf, sizeof buf,
                      "image is %lldx%lld = %.1f MP, over the %.1f MP limit (decompression-bomb guard; raise max_pixels to allow it)",
                      width, height, double(width * height) / 1e6, double(max_pixels) / 1e6);
        throw ImageError(buf);
    }
}

int choose_reduction(int height, int width, const MinShape& min_shape) {
    if (!min_shape) return 1;
    int need_h, need_w;
    min_shape(height, width, need_h, need_w);
    for (int f : {8, 4, 2})
        if (ceil_div(height, f) >= need_h && ceil_div(width, f) >= need_w) return f;
    return 1;
}

cv::Mat to_rgb8(const cv::Mat& img_in, bool bgr) {
    cv::Mat img = to_uint8(img_in);
    cv::Mat out;
    switch (img.channels()) {
        case 1: cv::cvtColor(img, out, cv::COLOR_GRAY2RGB); return out;
        case 2: {
            cv::Mat ch[2];
            cv::split(img, ch);
            cv::cvtColor(composite_on_white(ch[0], ch[1]), out, cv::COLOR_GRAY2RGB);
            return out;
        }
        case 3:
            if (bgr) cv::cvtColor(img, out, cv::COLOR_BGR2RGB);
            else out = img.clone();
            return out;
        case 4: {
            cv::Mat color, alpha;
            cv::cvtColor(img, color, bgr ? cv::COLOR_BGRA2RGB : cv::COLOR_RGBA2RGB);
            cv::extractChannel(img, alpha, 3);
            return composite_on_white(color, alpha);
        }
        default: throw ImageError("unsupported image layout (" + std::to_string(img.channels()) + " channels)");
    }
}

cv::Mat apply_orientation(const cv::Mat& img, int o) {
    cv::Mat out;
    switch (o) {
        case 2: cv::flip(img, out, 1); return out;
        case 3: cv::rotate(img, out, cv::ROTATE_180); return out;
        case 4: cv::flip(img, out, 0); return out;
        case 5: cv::transpose(img, out); return out;
        case 6: cv::rotate(img, out, cv::ROTATE_90_CLOCKWISE); return out;
        case 7: {
            cv::Mat t;
            cv::transpose(img, t);
            cv::flip(t, out, -1);
            return out;
        }
        case 8: cv::rotate(img, out, cv::ROTATE_90_COUNTERCLOCKWISE); return out;
        default: return img;
    }
}

Decoded decode(const uint8_t* data, size_t n, long long max_pixels, const MinShape& min_shape) {
    if (n == 0) throw ImageError("empty file (0 bytes)");
    Header hd = probe(data, n);
    if (hd.has_size) {
        if (hd.width == 0 || hd.height == 0)
            throw ImageError("header says the image is " + std::to_string(hd.width) + "x" + std::to_string(hd.height) + " (no pixels)");
        check_pixels(hd.width, hd.height, max_pixels);
    } else if (!hd.format.empty() && max_pixels >= 0) {
        throw ImageError("corrupt " + upper(hd.format) +
                         " header: no image size found (not decoded: the decompression-bomb guard needs it)");
    }
    if (n > size_t(INT32_MAX)) throw ImageError("file is too large for OpenCV's decoder (over 2 GiB)");
    const cv::Mat buf(1, int(n), CV_8U, const_cast<uint8_t*>(data));
    Decoded out;
    try {
        if (hd.format == "jpeg") {
            out = decode_jpeg(buf, data, n, hd, min_shape);
        } else {
            cv::Mat img = cv::imdecode(buf, cv::IMREAD_UNCHANGED);
            if (img.empty()) {
                if (hd.format.empty() && n >= 12 && std::memcmp(data + 4, "ftyp", 4) == 0)
                    throw ImageError("HEIF/AVIF is not supported by this build (OpenCV " CV_VERSION
                                     " has no HEIF/AVIF decoder; the Python runtime reads it with the heif extra)");
                if (hd.format.empty())
                    throw ImageError("not an image: unrecognised file signature " + py_bytes_repr(data, std::min<size_t>(n, 8)));
                if (hd.format == "gif")
                    throw ImageError("GIF is not supported by this build (OpenCV " CV_VERSION " has no GIF decoder)");
                throw ImageError("corrupt or truncated " + upper(hd.format) + " data (OpenCV could not decode it)");
            }
            cv::Mat rgb = to_rgb8(img, true);
            img.release();
            int orientation = 1;
            if (hd.format == "png" || hd.format == "webp") orientation = exif_orientation(exif_blob(hd.format, data, n));
            else if (hd.format == "tiff") {
                auto tags = read_tiff_ifd0(data, n);
                auto it = tags.find(0x0112);
                if (it != tags.end() && it->second >= 1 && it->second <= 8) orientation = int(it->second);
            }
            out.image = apply_orientation(rgb, orientation);
            out.full_h = out.image.rows;
            out.full_w = out.image.cols;
        }
    } catch (const cv::Exception& e) {
        throw ImageError("OpenCV cannot decode this " + (hd.format.empty() ? std::string("file") : hd.format) + " (" +
                         cv_reason(e) + ")");
    }
    check_pixels(out.full_w, out.full_h, max_pixels);
    return out;
}

Decoded from_pixels(const uint8_t* pixels, int width, int height, size_t stride, PixelFormat format, long long max_pixels) {
    int cn = format == PixelFormat::GRAY ? 1 : (format == PixelFormat::RGBA || format == PixelFormat::BGRA) ? 4 : 3;
    if (!pixels || width < 1 || height < 1)
        throw ImageError("expected an image of at least 1x1 pixels, got " + std::to_string(width) + "x" + std::to_string(height));
    if (stride == 0) stride = size_t(width) * size_t(cn);
    if (stride < size_t(width) * size_t(cn))
        throw ImageError("row stride " + std::to_string(stride) + " is smaller than width x channels (" +
                         std::to_string(size_t(width) * size_t(cn)) + ")");
    check_pixels(width, height, max_pixels);
    cv::Mat view(height, width, CV_MAKETYPE(CV_8U, cn), const_cast<uint8_t*>(pixels), stride);
    Decoded d;
    d.image = to_rgb8(view, format == PixelFormat::BGR || format == PixelFormat::BGRA);
    if (d.image.data == pixels) d.image = d.image.clone();
    d.full_h = height;
    d.full_w = width;
    return d;
}

}  // namespace quasar
