# Warning and sanitizer options for fut's own targets. They are applied
# PRIVATE to each target, so nothing leaks into a consumer's build and
# nothing extra has to be exported with the libraries.
if(FUT_SANITIZE STREQUAL "address")
  set(FUT_SANITIZER_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all
                          -fno-omit-frame-pointer)
elseif(FUT_SANITIZE STREQUAL "thread")
  set(FUT_SANITIZER_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
elseif(NOT FUT_SANITIZE STREQUAL "")
  message(FATAL_ERROR "FUT_SANITIZE must be empty, address or thread")
endif()

function(fut_apply_options target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow $<$<COMPILE_LANGUAGE:C>:-Wstrict-prototypes>
    $<$<BOOL:${FUT_WERROR}>:-Werror>)
  if(FUT_SANITIZER_FLAGS)
    target_compile_options(${target} PRIVATE ${FUT_SANITIZER_FLAGS} -g)
    target_link_options(${target} PRIVATE ${FUT_SANITIZER_FLAGS})
  endif()
endfunction()
