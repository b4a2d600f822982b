/* fut_version: the version this library was built as. */
#include <fut/fut.h>

#define FUT_STR(x)  #x
#define FUT_XSTR(x) FUT_STR(x)

const char *fut_version(void)
{
    return FUT_XSTR(FUT_VERSION_MAJOR) "." FUT_XSTR(
        FUT_VERSION_MINOR) "." FUT_XSTR(FUT_VERSION_PATCH);
}
