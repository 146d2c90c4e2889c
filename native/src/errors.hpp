// Internal C++ errors; the C API (capi.cpp) turns each into a status code and a message.
#pragma once
#include <stdexcept>
#include <string>

#include "quasar.h"

namespace quasar {

struct Error : std::runtime_error {
    quasar_status code;
    Error(quasar_status c, const std::string& msg) : std::runtime_error(msg), code(c) {}
};

// One input cannot be scored; what() is the reason shown next to the file name (quasar/io ImageError).
struct ImageError : Error {
    explicit ImageError(const std::string& msg) : Error(QUASAR_ERR_IMAGE, msg) {}
};

// ``text`` with line breaks written as \n / \r, so an error stays one line (quasar/errors.py one_line).
std::string one_line(const std::string& text);

}  // namespace quasar
