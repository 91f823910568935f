# The layering of the build, checked: for every layer L and every layer H above it, a translation unit
# compiled with L's include folder (build/layers/L, see CMakeLists.txt mpq_layer) that includes one of H's
# headers must fail with the compiler's "file not found" -- an upward include cannot build. A control per
# layer includes the layer's own header and must compile, so the check cannot pass by breaking the setup.
set(MPQ_LAYER_PROBE_DIR ${CMAKE_BINARY_DIR}/layer_probes)
file(MAKE_DIRECTORY ${MPQ_LAYER_PROBE_DIR})
set(lower "")
list(REVERSE MPQ_LAYERS)
set(higher "")
foreach(layer IN LISTS MPQ_LAYERS)  # top first
  list(GET MPQ_LAYER_OWN_${layer} 0 own)
  file(RELATIVE_PATH own_rel ${PROJECT_SOURCE_DIR} ${own})
  set(ctl ${MPQ_LAYER_PROBE_DIR}/${layer}_own.cpp)
  file(WRITE ${ctl} "#include \"${own_rel}\"\n")
  add_test(NAME layers.${layer}_includes_itself
           COMMAND ${CMAKE_CXX_COMPILER} -std=c++20 -fsyntax-only ${MPQ_BASE_FLAGS} -I${MPQ_LAYER_FARM_${layer}}
                   ${ctl})
  foreach(up IN LISTS higher)
    list(GET MPQ_LAYER_OWN_${up} 0 up_hdr)
    file(RELATIVE_PATH up_rel ${PROJECT_SOURCE_DIR} ${up_hdr})
    set(probe ${MPQ_LAYER_PROBE_DIR}/${layer}_includes_${up}.cpp)
    file(WRITE ${probe} "#include \"${up_rel}\"\n")
    add_test(NAME layers.${layer}_cannot_include_${up}
             COMMAND ${CMAKE_CXX_COMPILER} -std=c++20 -fsyntax-only -I${MPQ_LAYER_FARM_${layer}} ${probe})
    string(REPLACE "." "[.]" up_re "${up_rel}")
    set_tests_properties(layers.${layer}_cannot_include_${up} PROPERTIES
                         PASS_REGULAR_EXPRESSION "${up_re}.*(No such file|not found)")
  endforeach()
  list(APPEND higher ${layer})
endforeach()
list(REVERSE MPQ_LAYERS)
