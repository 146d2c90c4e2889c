// Reads the few parts of an ONNX ModelProto the runtime needs, without protobuf or libonnx:
// metadata_props, the head initializers (name prefix "quasar."), every initializer's data type, and
// the graph's input and output names and shapes. Mirrors quasar/onnx_meta.py (same reasons on failure).
#pragma once
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace quasar {

struct NotOnnx : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// A metadata_props entry, or their number, over the bounds below (quasar/limits.py).
struct MetadataTooLarge : NotOnnx {
    using NotOnnx::NotOnnx;
};
constexpr uint64_t kMaxMetadataValueBytes = 64u << 10;  // MAX_METADATA_VALUE_BYTES
constexpr size_t kMaxMetadataEntries = 256;            // MAX_METADATA_ENTRIES

struct OnnxTensor {
    std::string name;
    int data_type = 0;
    std::vector<int64_t> dims;
    std::string data;  // raw little-endian bytes in C order
    std::vector<double> values() const;  // float/int types as doubles (float16/bfloat16 too)
};

struct OnnxValueInfo {
    std::string name;
    int elem_type = 0;
    std::vector<int64_t> dims;  // -1 for a symbolic or missing dimension
    std::vector<std::string> dim_names;  // dim_param of each dimension ("" if none)
};

struct OnnxModel {
    std::map<std::string, std::string> metadata;
    std::map<std::string, OnnxTensor> head_tensors;  // initializers whose name starts with the prefix
    std::map<int, int> dtypes;                        // data type -> number of initializers
    std::vector<OnnxValueInfo> inputs, outputs;
    std::vector<std::string> nan;       // float initializers holding NaN
    std::vector<std::string> external;  // initializers kept in an external file
};

// What the model digest covers (quasar/onnx_meta.py model_layout): the byte ranges [first, second) of
// every top-level field but metadata_props, in file order, and each metadata entry as raw (key, value).
void model_layout(const std::string& bytes, std::vector<std::pair<size_t, size_t>>& ranges,
                  std::vector<std::pair<std::string, std::string>>& entries);

// metadata_props only (what quasar/onnx_meta.py read_metadata_props reads); throws NotOnnx.
std::map<std::string, std::string> read_metadata_props(const std::string& bytes);
// Initializers with ``prefix`` (data), all data types, graph inputs/outputs; throws NotOnnx.
void read_graph(const std::string& bytes, const std::string& prefix, OnnxModel& out);

// The varint at b[i] (i < end), i moved past it; throws NotOnnx when truncated or over 10 bytes (varint.hpp).
uint64_t read_varint(const std::string& b, size_t& i, size_t end);

extern const std::map<int, std::string> kDtypeNames;
size_t dtype_size(int dtype);  // 0 if unknown

}  // namespace quasar
