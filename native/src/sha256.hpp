// SHA-256 (FIPS 180-4): the model's head hash, file sidecars and engine sidecars.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace quasar {

class Sha256 {
public:
    Sha256();
    void update(const void* data, size_t n);
    std::string hexdigest();  // finalises; call once

private:
    void block(const uint8_t* p);
    uint32_t h_[8];
    uint8_t buf_[64];
    size_t used_ = 0;
    uint64_t total_ = 0;
};

// Hex sha256 of a file, read in 1 MiB chunks; false (and ``err``) if it cannot be read.
bool file_sha256(const std::string& path, std::string& hex, std::string& err);

}  // namespace quasar
