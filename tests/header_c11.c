/* The public header compiles on its own as strict C11. */
#include <fut/fut.h>

int main(void)
{
    return fut_version()[0] == '\0';
}
