// The fused-model contract (mirrors quasar/contract.py): metadata parsing and validation, the
// cross-checks of metadata against the graph, the file sha256 sidecar, TensorRT engine sidecars.
// Every refusal is an Error(QUASAR_ERR_MODEL) whose message is the Python runtime's.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "onnx_reader.hpp"
#include "spec.hpp"

namespace quasar {

extern const char* const kFormat;
constexpr int kFormatVersion = 3;  // 3: explanation heads (quasar.explain)
constexpr int kExplainFormatVersion = 3;
extern const char* const kInputName;
extern const char* const kInputLayout;
constexpr double kMaxLogitScale = 1000.0;

struct ModelInfo {
    std::string path;
    std::string kind;  // "onnx" or "engine"
    std::vector<std::string> heads;
    Spec spec;
    std::string encoder;
    bool dynamic_size = false;
    std::vector<double> logit_scales;
    std::string precision, pack_hash, project_version;
    int format_version = kFormatVersion;
    std::vector<std::pair<std::string, std::vector<int>>> combine;
    std::vector<int> explain;  // quasar.explain: the explanation heads' base columns (format 3), may be empty
    std::map<std::string, std::string> metadata;
    // From the graph (ONNX): the "images" input's dims (-1: dynamic), e.g. {1, 384, 512, 3}.
    std::vector<int64_t> input_dims;
    std::vector<std::string> input_dim_names;  // the symbolic names of dynamic dimensions ("batch")

    // Heads a user sees by default: neither summarised by a combine head nor explanation heads.
    std::vector<bool> summary_mask() const;
    // The heads --explain adds and names the reason from: quasar.explain, else the combined heads.
    std::vector<bool> explain_mask() const;
};

// quasar/contract.py parse_metadata (REQUIRED_KEYS): throws Error(QUASAR_ERR_MODEL).
ModelInfo parse_metadata(const std::map<std::string, std::string>& meta, const std::string& path, const std::string& kind);
// quasar/contract.py check_graph: ``bytes`` is the ONNX file.
void check_graph(ModelInfo& info, const std::string& bytes);
// quasar/contract.py model_sha256: the digest of the ONNX file ``bytes`` but its quasar.model_sha256
// entries (how many there are goes to ``own_entries``); throws NotOnnx.
std::string model_sha256(const std::string& bytes, int& own_entries);
// The "images" input [N, H, W, 3] against the metadata (quasar/contract.py check_input_shape).
void check_input_shape(const ModelInfo& info);
// True if ``path`` has a .sha256 sidecar and matches it (``bytes`` = the file), false without one;
// throws Error on a mismatch or an unreadable sidecar.
bool check_sha256_sidecar(const std::string& path, const std::string& bytes);

bool is_engine_path(const std::string& path);
// The engine's X.engine.json sidecar, parsed and checked for format and version.
Json read_engine_sidecar(const std::string& engine_path);
std::map<std::string, std::string> engine_metadata(const Json& sidecar, const std::string& side);
// What an engine was built for against this machine ("tensorrt_version", "gpu_name", "compute_capability").
std::vector<std::string> sidecar_mismatches(const Json& sidecar, const std::map<std::string, std::string>& platform,
                                            bool check_gpu_name = true);

// Reads a whole file; throws Error(QUASAR_ERR_MODEL) "<path>: model file not found" etc.
std::string read_model_file(const std::string& path);
// Read, validate and cross-check a model file (quasar/runtime/model.py load_model_info). For ONNX
// files ``bytes_out`` receives the file (for the backend to load from memory).
ModelInfo load_model_info(const std::string& path, std::string* bytes_out);

std::string json_dumps(const Json& v);  // Python json.dumps (default separators)

}  // namespace quasar
