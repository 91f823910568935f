# Command-line error handling: each case runs build/mpq with a bad request and passes only when mpq exits
# with a clean error (status 1 or 2, no crash) whose message names the offending value
# (tests/cli/expect_error.sh). Real weights / data come from ../shared/data as in the doctest suite.
set(MPQ_SHARED ${PROJECT_SOURCE_DIR}/../shared/data)
set(MPQ_TFLITE ${MPQ_SHARED}/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite)
set(MPQ_IMAGES ${MPQ_SHARED}/imagenet-val-1300)

# usage errors (exit status 2) and runtime errors (exit status 1), tools/cli.h
function(mpq_cli_usage name regex)
  add_test(NAME cli.${name} COMMAND ${PROJECT_SOURCE_DIR}/tests/cli/expect_error.sh 2 "${regex}" $<TARGET_FILE:mpq>
                                    ${ARGN})
endfunction()
function(mpq_cli_error name regex)
  add_test(NAME cli.${name} COMMAND ${PROJECT_SOURCE_DIR}/tests/cli/expect_error.sh 1 "${regex}" $<TARGET_FILE:mpq>
                                    ${ARGN})
endfunction()

mpq_cli_usage(unknown_command "unknown command" frobnicate)
mpq_cli_usage(unknown_option "--limt" bench --model mobilenetv2 --limt 3)
mpq_cli_usage(bench_unknown_model "--model 'alexnet': expected one of resnet50, mobilenetv2, bert" bench --model alexnet)
mpq_cli_usage(bench_unknown_precision "precision 'int3' is unknown" bench --model mobilenetv2 --precision int3)
mpq_cli_usage(bench_config_and_precision "either --config or --precision" bench --model mobilenetv2 --precision int8
              --config ${PROJECT_SOURCE_DIR}/tests/data/config_other_model.json)
mpq_cli_usage(bench_bad_group "--int4-group must be 0, 32, 64 or 128" bench --model mobilenetv2 --precision int4
              --int4-group 48)
mpq_cli_error(missing_weights "nosuch.tflite" eval --model mobilenetv2 --weights /nonexistent/nosuch.tflite
              --data ${MPQ_IMAGES} --limit 1)
mpq_cli_error(config_unknown_layer "features.99.conv" eval --model mobilenetv2 --weights ${MPQ_TFLITE}
              --data ${MPQ_IMAGES} --limit 1 --config ${PROJECT_SOURCE_DIR}/tests/data/config_unknown_layer.json)
mpq_cli_error(config_other_model "resnet50" eval --model mobilenetv2 --weights ${MPQ_TFLITE} --data ${MPQ_IMAGES}
              --limit 1 --config ${PROJECT_SOURCE_DIR}/tests/data/config_other_model.json)
mpq_cli_error(config_bad_precision "int3" eval --model mobilenetv2 --weights ${MPQ_TFLITE} --data ${MPQ_IMAGES}
              --limit 1 --config ${PROJECT_SOURCE_DIR}/tests/data/config_bad_precision.json)
mpq_cli_error(config_missing_file "nosuch_config.json" bench --model mobilenetv2 --config /nonexistent/nosuch_config.json)
mpq_cli_usage(profile_needs_out "--out" profile --model mobilenetv2)
mpq_cli_usage(profile_bad_precisions "precision 'fp8' is unknown" profile --model mobilenetv2 --out /dev/null
              --precisions fp32,fp8)
mpq_cli_error(empty_data_folder "labels.txt" eval --model mobilenetv2 --weights ${MPQ_TFLITE}
              --data ${PROJECT_SOURCE_DIR}/tests/cli --limit 1)
mpq_cli_usage(search_bad_confidence "--confidence 1.2 is out of range \\[0.5, 1\\]" search --model mobilenetv2
              --weights ${MPQ_TFLITE} --data ${MPQ_IMAGES} --max-drop 0.5 --confidence 1.2 --out /dev/null
              --report /tmp/mpq-cli-bad-confidence)
mpq_cli_usage(search_bad_start "--start 'int8': expected one of fp16, bf16" search --model mobilenetv2
              --weights ${MPQ_TFLITE} --data ${MPQ_IMAGES} --max-drop 0.5 --start int8 --out /dev/null
              --report /tmp/mpq-cli-bad-start)

# command-line conventions (issue 13): numbers range-checked with the flag named, repeated options refused
mpq_cli_usage(limit_negative "--limit -1 is out of range" eval --model mobilenetv2 --weights ${MPQ_TFLITE}
              --data ${MPQ_IMAGES} --limit -1)
mpq_cli_usage(limit_overflow "--limit 4294967297 is out of range" eval --model mobilenetv2 --weights ${MPQ_TFLITE}
              --data ${MPQ_IMAGES} --limit 4294967297)
mpq_cli_usage(threads_negative "--threads -7 is out of range" bench --model mobilenetv2 --threads -7)
mpq_cli_usage(threads_huge "--threads 10000 is out of range" bench --model mobilenetv2 --threads 10000)
mpq_cli_usage(batch_negative "--batch -3 is out of range" eval --model mobilenetv2 --weights ${MPQ_TFLITE}
              --data ${MPQ_IMAGES} --batch -3)
mpq_cli_usage(repeated_option "--limit is given twice" eval --model mobilenetv2 --weights ${MPQ_TFLITE}
              --data ${MPQ_IMAGES} --limit 3 --limit 4)
mpq_cli_usage(trailing_junk "--runs expects an integer, got '5x'" bench --model mobilenetv2 --runs 5x)
mpq_cli_usage(flag_with_value "--json is a flag and takes no value" bench --model mobilenetv2 --json yes)
mpq_cli_usage(positional "unexpected argument 'extra'" bench extra --model mobilenetv2)
# the search checks its outputs before any analysis: an --out in a folder that cannot be created
mpq_cli_error(search_out_unwritable "output folder ./proc/mpq-no.: cannot create it" search --model mobilenetv2
              --weights ${MPQ_TFLITE} --data ${MPQ_IMAGES} --max-drop 0.5 --out /proc/mpq-no/config.json
              --report /tmp/mpq-cli-out-unwritable)
# -h and --version answer with status 0
add_test(NAME cli.short_help COMMAND $<TARGET_FILE:mpq> bench -h)
set_tests_properties(cli.short_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: mpq bench")
add_test(NAME cli.version COMMAND $<TARGET_FILE:mpq> --version)
set_tests_properties(cli.version PROPERTIES PASS_REGULAR_EXPRESSION "mpq [0-9.]+ \\(git [0-9a-f]+.*\\), kernels dispatch (ref|avx2|avx_vnni|avx512|avx512_vnni|avx512_bf16)")
# outputs are validated before the work (core/file_io.h check_output_file): the input here does not even exist
mpq_cli_error(convert_out_missing_folder "output '/nonexistent/x.safetensors': folder '/nonexistent' does not exist"
              convert --model mobilenetv2 --weights ${MPQ_TFLITE} --out /nonexistent/x.safetensors)
mpq_cli_error(infer_output_is_folder "output '/tmp' exists and is a directory" infer --model mobilenetv2
              --weights /nonexistent/nosuch.tflite --input /nonexistent/x.npy --output /tmp)
# `mpq profile --out` is checked the same way before the model is loaded (the weights here do not even exist)
# and written atomically
mpq_cli_error(profile_out_missing_folder "output '/nonexistent/latency.json': folder '/nonexistent' does not exist"
              profile --model mobilenetv2 --weights /nonexistent/nosuch.tflite --out /nonexistent/latency.json)
mpq_cli_error(profile_out_parent_not_folder "output '.*/mpq/latency.json': '.*/mpq' is not a folder" profile --model
              mobilenetv2 --weights /nonexistent/nosuch.tflite --out $<TARGET_FILE:mpq>/latency.json)
mpq_cli_error(profile_out_is_folder "output '/tmp' exists and is a directory" profile --model mobilenetv2
              --weights /nonexistent/nosuch.tflite --out /tmp)
# the search's analysis cache folder is checked before the model is loaded (damaged entries in it are only
# warnings, recomputed: tests/test_analysis_cache.cpp); here its parent is a file
mpq_cli_error(search_cache_unwritable "output folder '.*/mpq/cache': '.*/mpq' exists and is not a folder" search
              --model mobilenetv2 --weights /nonexistent/nosuch.tflite --data ${MPQ_IMAGES} --max-drop 0.5
              --out /tmp/mpq-cli-cache-unwritable/config.json --report /tmp/mpq-cli-cache-unwritable
              --cache $<TARGET_FILE:mpq>/cache)

# Deployable model files (mpq export, --model-file): a small BERT file made once (fixture), then the commands
# that read it, and the refusals.
set(MPQ_BERT_WEIGHTS ${PROJECT_SOURCE_DIR}/models/weights/bert-sst2/model.safetensors)
set(MPQ_CLI_MODEL_FILE ${CMAKE_BINARY_DIR}/cli_bert_fp16.mpq)
set(MPQ_CLI_TRUNCATED ${CMAKE_BINARY_DIR}/cli_bert_truncated.mpq)
add_test(NAME cli.export_bert COMMAND $<TARGET_FILE:mpq> export --model bert --weights ${MPQ_BERT_WEIGHTS}
                                      --precision fp16 --out ${MPQ_CLI_MODEL_FILE} --json)
set_tests_properties(cli.export_bert PROPERTIES FIXTURES_SETUP mpq_model_file PASS_REGULAR_EXPRESSION
                     "\"file_bytes\":[0-9]+.*\"stored_bytes\":[0-9]+")
add_test(NAME cli.truncate_model_file COMMAND sh -c "head -c 100000 ${MPQ_CLI_MODEL_FILE} > ${MPQ_CLI_TRUNCATED}")
set_tests_properties(cli.truncate_model_file PROPERTIES FIXTURES_REQUIRED mpq_model_file FIXTURES_SETUP
                     mpq_truncated_file)
add_test(NAME cli.eval_model_file COMMAND $<TARGET_FILE:mpq> eval --model-file ${MPQ_CLI_MODEL_FILE}
                                          --data ${MPQ_SHARED}/sst2 --limit 32 --json)
set_tests_properties(cli.eval_model_file PROPERTIES FIXTURES_REQUIRED mpq_model_file PASS_REGULAR_EXPRESSION
                     "\"accuracy_pct\":[0-9.]+.*\"engine\":\"native\"")
add_test(NAME cli.bench_model_file COMMAND $<TARGET_FILE:mpq> bench --model-file ${MPQ_CLI_MODEL_FILE} --runs 3
                                           --json)
set_tests_properties(cli.bench_model_file PROPERTIES FIXTURES_REQUIRED mpq_model_file PASS_REGULAR_EXPRESSION
                     "\"load_ms\":[0-9.]+")
mpq_cli_usage(export_needs_assignment "give --config FILE or --precision P" export --model mobilenetv2
              --weights ${MPQ_TFLITE} --out /tmp/mpq-cli-export.mpq)
mpq_cli_error(export_out_missing_folder "output '/nonexistent/m.mpq': folder '/nonexistent' does not exist" export
              --model mobilenetv2 --weights /nonexistent/nosuch.tflite --precision int8 --out /nonexistent/m.mpq)
mpq_cli_usage(infer_model_file_and_weights "--model-file holds the weights" infer --model-file ${MPQ_CLI_MODEL_FILE}
              --weights ${MPQ_TFLITE} --input /nonexistent/x.npy --output /tmp/mpq-cli-y.npy)
mpq_cli_error(infer_model_file_missing "/nonexistent/m.mpq" infer --model-file /nonexistent/m.mpq
              --input /nonexistent/x.npy --output /tmp/mpq-cli-y.npy)
mpq_cli_error(eval_model_file_not_a_model_file "config_other_model.json" eval --model-file
              ${PROJECT_SOURCE_DIR}/tests/data/config_other_model.json --data ${MPQ_IMAGES})
mpq_cli_error(bench_model_file_truncated "cli_bert_truncated.mpq.*data_offsets" bench --model-file
              ${MPQ_CLI_TRUNCATED})
set_tests_properties(cli.bench_model_file_truncated PROPERTIES FIXTURES_REQUIRED mpq_truncated_file)
mpq_cli_error(infer_model_file_other_model "--model mobilenetv2 but .* holds bert" infer --model mobilenetv2
              --model-file ${MPQ_CLI_MODEL_FILE} --input /nonexistent/x.npy --output /tmp/mpq-cli-y.npy)
set_tests_properties(cli.infer_model_file_other_model PROPERTIES FIXTURES_REQUIRED mpq_model_file)
mpq_cli_usage(preprocess_bad_preset "preset" preprocess --preset caffe --images a.jpg --out /tmp/mpq-cli-x.npy)
