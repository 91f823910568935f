// Entry points shared between command files (e.g. `mpq eval` hands BERT to the BERT evaluator).
#pragma once
#include "deploy/model_file.h"
#include "tools/cli.h"

namespace mpq::cli {
// `mpq eval` for BERT (tools/cmd_bert.cpp); `file`: the loaded --model-file, or null (--weights).
int eval_bert(const Args& args, deploy::LoadedModel* file);
}  // namespace mpq::cli
