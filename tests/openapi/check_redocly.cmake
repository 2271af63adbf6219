# Run by the ctest openapi_lint_deps: fails, with the command that fixes it,
# when the pinned Redocly CLI has not been installed into openapi/node_modules.
# Usage: cmake -DREDOCLY=<openapi>/node_modules/.bin/redocly -P check_redocly.cmake
if(NOT DEFINED REDOCLY)
  message(FATAL_ERROR "check_redocly.cmake: pass -DREDOCLY=<path to redocly>")
endif()
if(NOT EXISTS "${REDOCLY}")
  message(FATAL_ERROR
    "Redocly CLI not found at ${REDOCLY}: openapi/node_modules is missing or "
    "incomplete. Run `npm ci --prefix openapi` from the repository root "
    "(needs Node.js and npm), then run ctest again.")
endif()
message(STATUS "Redocly CLI found at ${REDOCLY}")
