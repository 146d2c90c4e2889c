// Header probing before decoding (mirrors quasar/io/formats.py): the format from the magic bytes
// and the stored size the decoder will use, so decompression bombs are refused before any pixel
// is allocated; the EXIF orientation of PNG (eXIf) and WebP (EXIF) files, which OpenCV 4.6 does
// not apply. Nothing here decodes pixels or throws.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace quasar {

struct Header {
    std::string format;  // "jpeg", "png", "gif", "webp", "bmp", "tiff", "hdr", or "" (unknown)
    bool has_size = false;
    long long width = 0, height = 0;  // stored size, before any EXIF rotation
};

std::string sniff(const uint8_t* data, size_t n);
Header probe(const uint8_t* data, size_t n);
bool jpeg_has_eoi(const uint8_t* data, size_t n);
// Integer tags of the first IFD of a TIFF structure (TIFF, BigTIFF or an EXIF blob).
std::map<int, long long> read_tiff_ifd0(const uint8_t* data, size_t n);
int exif_orientation(const std::string& blob);  // 1..8, 1 when absent or invalid
// The raw EXIF blob of a PNG (eXIf chunk) or WebP (EXIF chunk) file, "" if none.
std::string exif_blob(const std::string& format, const uint8_t* data, size_t n);
// Python's repr() of bytes (b'...'), for messages that quote a file's first bytes.
std::string py_bytes_repr(const uint8_t* data, size_t n);

}  // namespace quasar
