// The one protobuf varint decoder (base 128, low groups first, at most 10 bytes), for every reader of
// ONNX bytes: onnx_reader.cpp (strings, throwing NotOnnx), graph_rewrite.cpp and contract.cpp's
// metadata prescan (a file stream). Each caller only says where the next byte comes from.
#pragma once
#include <cstdint>

namespace quasar {

enum class VarintRead { Ok, End, Truncated, TooLong };  // End: no byte at all (a clean end of input)

// next() returns the next byte (0..255) or a negative number at the end of the input.
template <class Next>
VarintRead decode_varint(Next&& next, uint64_t& v) {
    v = 0;
    for (int shift = 0;; shift += 7) {
        if (shift > 63) return VarintRead::TooLong;
        int c = next();
        if (c < 0) return shift == 0 ? VarintRead::End : VarintRead::Truncated;
        v |= uint64_t(c & 0x7F) << shift;
        if (!(c & 0x80)) return VarintRead::Ok;
    }
}

}  // namespace quasar
