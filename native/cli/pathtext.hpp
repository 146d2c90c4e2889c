// How a path is written as text in result files and read back (mirrors quasar/runtime/pathtext.py):
// valid UTF-8 as is, a backslash doubled, every byte that is not valid UTF-8 and every control
// character written \xNN, so a row is always one line; --resume matches rows by absolute,
// normalised path. Paths are byte strings here, as POSIX has them.
#pragma once
#include <string>

namespace quasar_cli {

std::string encode_text(const std::string& bytes);
std::string decode_text(const std::string& text);
std::string resume_key(const std::string& path);  // "<...>" labels are kept as they are
std::string normpath(const std::string& path);     // os.path.normpath (POSIX)
std::string abspath(const std::string& path);      // os.path.abspath (POSIX)
std::string path_join(const std::string& dir, const std::string& name);
// A CSV text cell safe for spreadsheets (pathtext.py csv_cell): one leading ' before = + - @ \t \r or ';
// csv_uncell removes one again.
std::string csv_cell(const std::string& text);
std::string csv_uncell(const std::string& cell);

}  // namespace quasar_cli
