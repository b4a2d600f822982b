# Warning and sanitizer options for fut's own targets, as one interface
# target linked PRIVATE: nothing here leaks into a consumer's build.
add_library(fut_build_options INTERFACE)
target_compile_options(fut_build_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes
  $<$<BOOL:${FUT_WERROR}>:-Werror>)

if(FUT_SANITIZE STREQUAL "address")
  set(_fut_san -fsanitize=address,undefined -fno-sanitize-recover=all
               -fno-omit-frame-pointer)
elseif(FUT_SANITIZE STREQUAL "thread")
  set(_fut_san -fsanitize=thread -fno-omit-frame-pointer)
elseif(NOT FUT_SANITIZE STREQUAL "")
  message(FATAL_ERROR "FUT_SANITIZE must be empty, address or thread")
endif()
if(_fut_san)
  target_compile_options(fut_build_options INTERFACE ${_fut_san} -g)
  target_link_options(fut_build_options INTERFACE ${_fut_san})
endif()
