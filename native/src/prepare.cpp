#include "prepare.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <opencv2/imgproc.hpp>

#include "errors.hpp"
#include "probe.hpp"
#include "resample.hpp"

namespace quasar {

constexpr int kTinySide = 32;
// quasar/limits.py: INPUT_HEAD_BYTES, MAX_BYTES_PER_PIXEL, INPUT_SLACK_BYTES
constexpr uint64_t kInputHeadBytes = 4u << 20;
constexpr double kMaxBytesPerPixel = 8;
constexpr uint64_t kInputSlackBytes = 64u << 20;

std::string read_file(const std::string& path, long long max_bytes) {
    struct stat st;
    auto fail = [&](int err) -> ImageError {
        if (err == ENOENT) {
            struct stat lst;
            bool link = ::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode);
            return ImageError(link ? "file not found (broken symlink)" : "file not found");
        }
        if (err == EACCES || err == EPERM) return ImageError("permission denied");
        return ImageError(std::strerror(err));
    };
    if (::stat(path.c_str(), &st) != 0) throw fail(errno);
    if (S_ISDIR(st.st_mode)) throw ImageError("is a directory (pass -r / recursive=True to score folders)");
    if (!S_ISREG(st.st_mode)) throw ImageError("not a regular file");
    if (max_bytes >= 0 && st.st_size > max_bytes) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "file is %.0f MiB, over the %.0f MiB limit", double(st.st_size) / (1 << 20),
                      double(max_bytes) / (1 << 20));
        throw ImageError(buf);
    }
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw fail(errno);
    std::string data;
    size_t got = 0;
    if (uint64_t(st.st_size) > kInputSlackBytes) {  // quasar/io/files.py check_size_for_header
        // the head only: a buffer of the whole file's size is zero-filled (resident) before it is read,
        // so a small JPEG with a 1 GiB tail cost 1 GiB although the tail was refused unread
        data.resize(size_t(kInputHeadBytes));
        got = std::fread(&data[0], 1, data.size(), f);
        Header h = probe(reinterpret_cast<const uint8_t*>(data.data()), got);
        if (h.has_size) {
            double most = double(h.width) * double(h.height) * kMaxBytesPerPixel + double(kInputSlackBytes);
            if (double(st.st_size) > most) {
                std::fclose(f);
                char buf[240];
                std::snprintf(buf, sizeof buf, "file is %.0f MiB, more than a %lldx%lld image can take (%.0f MiB): "
                              "data after the image? (not read)", double(st.st_size) / (1 << 20), h.width, h.height,
                              most / (1 << 20));
                throw ImageError(buf);
            }
        }
    }
    data.resize(size_t(st.st_size) > got ? size_t(st.st_size) : got);
    if (!std::ferror(f) && got < data.size()) got += std::fread(&data[got], 1, data.size() - got, f);
    int err = std::ferror(f) ? errno : 0;
    // a file that grew since stat: read the rest too
    char chunk[65536];
    size_t k;
    while (!err && (k = std::fread(chunk, 1, sizeof chunk, f)) > 0) {
        data.resize(got);
        data.append(chunk, k);
        got += k;
    }
    std::fclose(f);
    if (err) throw fail(err);
    data.resize(got);
    return data;
}

std::string tiny_image_warning(int height, int width, const Spec& spec) {
    int limit = std::max(kTinySide, int(spec.min_size));
    if (std::min(height, width) >= limit) return "";
    return "tiny image (" + std::to_string(width) + "x" + std::to_string(height) + " px, under " + std::to_string(limit) +
           " px on its short side): scored after upscaling, so the score says little about the image";
}

Prepared Preparer::file(const std::string& path) const { 
    std::string data = read_file(path, opts_.max_file_bytes);
    return bytes(reinterpret_cast<const uint8_t*>(data.data()), data.size());
}

Prepared Preparer::bytes(const uint8_t* data, size_t n) const {
    MinShape min_shape;
    if (opts_.reduced_decode) {
        const Spec& spec = spec_;
        min_shape = [&spec](int h, int w, int& nh, int& nw) {
            try {
                Target t = target_shape(h, w, spec);
                nh = t.rh;
                nw = t.rw;
            } catch (const Error&) {  // refused in finish(); decode at full scale
                nh = h;
                nw = w;
            }
        };
    }
    return finish(decode(data, n, opts_.max_pixels, min_shape));
}

Prepared Preparer::pixels(const uint8_t* px, int width, int height, size_t stride, PixelFormat format) const {
    return finish(from_pixels(px, width, height, stride, format, opts_.max_pixels));
}

Prepared Preparer::finish(const Decoded& d) const {
    Target t = target_shape(d.full_h, d.full_w, spec_);
    cv::Mat out = resize_image(d.image, t.rw, t.rh, spec_.interpolation, spec_.resampler);
    if (t.crop) out = out(cv::Rect(t.left, t.top, std::min(t.cw, out.cols - t.left), std::min(t.ch, out.rows - t.top)));
    Prepared p;
    if (spec_.channel_order == "BGR") cv::cvtColor(out, p.tensor, cv::COLOR_RGB2BGR);
    else p.tensor = out.isContinuous() && out.data != d.image.data ? out : out.clone();
    p.warning = tiny_image_warning(d.full_h, d.full_w, spec_);
    return p;
}

}  // namespace quasar
