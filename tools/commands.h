// Entry points shared between command files (e.g. `mpq eval` hands BERT to the BERT evaluator).
#pragma once
#include "tools/cli.h"

namespace mpq::cli {
int eval_bert(const Args& args);   // tools/cmd_bert.cpp
int infer_bert(const Args& args);  // tools/cmd_bert.cpp
}  // namespace mpq::cli
