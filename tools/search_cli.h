// What `mpq search` and `mpq demo` share: the progress observer, and running a request to its files and its
// printed summary.
#pragma once
#include <string>

#include "quant/pipeline.h"

namespace mpq::cli {

// Loads the model named `model_name` from request.weights, checks the destinations before any work, runs
// the pipeline, writes `config_path` and the report folder, prints the summary (or, with as_json, the
// summary object). Returns the exit status: 0, or kExitOutsideRange when the chosen configuration is outside
// the range on the test split (the files are written either way).
int run_search_request(const std::string& model_name, const quant::SearchRequest& request,
                       const std::string& config_path, const std::string& report_dir, bool as_json);

}  // namespace mpq::cli
