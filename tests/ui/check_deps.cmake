# Run by the ctest ui_deps: fails, with the command that fixes it, when
# node, chromium or the pinned puppeteer-core is missing.
# Usage: cmake -DNODE=<node> -DPUPPETEER=<tests/ui>/node_modules/puppeteer-core/package.json
#              -DCHROMIUM=/usr/bin/chromium -P check_deps.cmake
foreach(var NODE PUPPETEER CHROMIUM)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_deps.cmake: pass -D${var}=...")
  endif()
endforeach()
set(fix "Run `scripts/install-deps --test` as root (apt: chromium, nodejs, npm; npm ci in tests/ui).")
execute_process(COMMAND ${NODE} --version RESULT_VARIABLE rc OUTPUT_VARIABLE version
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "node not found (${NODE}). ${fix}")
endif()
if(NOT EXISTS "${CHROMIUM}")
  message(FATAL_ERROR "chromium not found at ${CHROMIUM}. ${fix}")
endif()
if(NOT EXISTS "${PUPPETEER}")
  message(FATAL_ERROR "puppeteer-core not installed (${PUPPETEER}). ${fix} "
                      "Or: npm ci --prefix tests/ui")
endif()
message(STATUS "node ${version}, ${CHROMIUM}, ${PUPPETEER}")
