# Command-line error handling: each case runs build/mpq with a bad request and passes only when mpq exits
# with a clean error (status 1 or 2, no crash) whose message names the offending value
# (tests/cli/expect_error.sh). Real weights / data come from ../shared/data as in the doctest suite.
set(MPQ_SHARED ${PROJECT_SOURCE_DIR}/../shared/data)
set(MPQ_TFLITE ${MPQ_SHARED}/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite)
set(MPQ_IMAGES ${MPQ_SHARED}/imagenet-val-1300)

function(mpq_cli_error name regex)
  add_test(NAME cli.${name} COMMAND ${PROJECT_SOURCE_DIR}/tests/cli/expect_error.sh "${regex}" $<TARGET_FILE:mpq>
                                    ${ARGN})
endfunction()

mpq_cli_error(unknown_command "unknown command" frobnicate)
mpq_cli_error(unknown_option "--limt" bench --model mobilenetv2 --limt 3)
mpq_cli_error(bench_unknown_model "unknown model 'alexnet'" bench --model alexnet)
mpq_cli_error(bench_unknown_precision "precision 'int3' is unknown" bench --model mobilenetv2 --precision int3)
mpq_cli_error(bench_config_and_precision "either --config or --precision" bench --model mobilenetv2 --precision int8
              --config ${PROJECT_SOURCE_DIR}/tests/data/config_other_model.json)
mpq_cli_error(bench_bad_group "--int4-group must be 0, 32, 64 or 128" bench --model mobilenetv2 --precision int4
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
mpq_cli_error(profile_needs_out "--out" profile --model mobilenetv2)
mpq_cli_error(profile_bad_precisions "precision 'fp8' is unknown" profile --model mobilenetv2 --out /dev/null
              --precisions fp32,fp8)
mpq_cli_error(empty_data_folder "labels.txt" eval --model mobilenetv2 --weights ${MPQ_TFLITE}
              --data ${PROJECT_SOURCE_DIR}/tests/cli --limit 1)
mpq_cli_error(search_bad_confidence "--confidence 1.2 must be in \\[0.5, 1\\)" search --model mobilenetv2
              --weights ${MPQ_TFLITE} --data ${MPQ_IMAGES} --max-drop 0.5 --confidence 1.2 --out /dev/null
              --report /tmp/mpq-cli-bad-confidence)
mpq_cli_error(search_bad_start "--start 'int8': expected fp16 or bf16" search --model mobilenetv2
              --weights ${MPQ_TFLITE} --data ${MPQ_IMAGES} --max-drop 0.5 --start int8 --out /dev/null
              --report /tmp/mpq-cli-bad-start)
# outputs are validated before the work (core/file_io.h check_output_file): the input here does not even exist
mpq_cli_error(convert_out_missing_folder "output '/nonexistent/x.safetensors': folder '/nonexistent' does not exist"
              convert --model mobilenetv2 --weights ${MPQ_TFLITE} --out /nonexistent/x.safetensors)
mpq_cli_error(infer_output_is_folder "output '/tmp' exists and is a directory" infer --model mobilenetv2
              --weights /nonexistent/nosuch.tflite --input /nonexistent/x.npy --output /tmp)
