# The installed library as an application sees it (tests/api/install_test.sh): cmake --install into a
# temporary prefix, the package checked (no ISA / warning / OpenMP flags for consumers, only the API's symbols
# exported), examples/embed (C++) and examples/embed_c (C) configured and built against it with
# find_package(mpq), and their output compared with `mpq infer --model-file` bit for bit. Labelled "install":
# scripts/test.sh runs it in the Release stage only (the sanitizer build's library needs the sanitizer runtime).
add_test(NAME api.install_and_embed
         COMMAND ${PROJECT_SOURCE_DIR}/tests/api/install_test.sh ${CMAKE_BINARY_DIR} ${PROJECT_SOURCE_DIR}
                 $<TARGET_FILE:mpq> ${CMAKE_GENERATOR} ${MPQ_TFLITE} ${MPQ_IMAGES})
set_tests_properties(api.install_and_embed PROPERTIES LABELS install TIMEOUT 300)
