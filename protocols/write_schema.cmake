# Writes a program's --schema JSON to OUTPUT (used by tessera_program() after
# each build of a program): the Scipion plugin builds its protocol classes
# from these files (scipion_plugin/README.md).
#   cmake -DPROGRAM=<executable> -DOUTPUT=<file.json> -P write_schema.cmake
get_filename_component(_dir "${OUTPUT}" DIRECTORY)
file(MAKE_DIRECTORY "${_dir}")
execute_process(COMMAND "${PROGRAM}" --schema OUTPUT_FILE "${OUTPUT}.tmp" RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  file(REMOVE "${OUTPUT}.tmp")
  message(FATAL_ERROR "${PROGRAM} --schema failed (${_rc})")
endif()
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
