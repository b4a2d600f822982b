// The public header compiles as C++ and links with C linkage.
#include <fut/fut.h>

#include <cstdio>

int main()
{
    fut_pool *pool = nullptr;
    if (fut_pool_create(&pool, nullptr) != 0)
        return 1;
    fut_future *f = fut_sleep(pool, 1);
    int rc = fut_await(f, nullptr);
    fut_release(f);
    fut_pool_destroy(pool);
    std::printf("C++: %s\n", fut_strerror(rc));
    return rc;
}
