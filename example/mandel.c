/* fut-mandel: the Mandelbrot set, one row per index of fut_parallel_for.
 *
 *   fut-mandel [SIZE] [--verify] [--pgm FILE]
 *
 * Counts the points of a SIZE x SIZE grid (default 1200) over
 * [-2, 0.5] x [-1.25, 1.25] that stay bounded for 1000 iterations. Rows
 * near the middle cost far more than rows near the edges, so the work is
 * uneven: a fair test of how a pool spreads it. The pool size is fut's
 * default (FUT_THREADS, else one worker per CPU), which is what
 *   fut-bench sweep --exec 'fut-mandel 1200' --threads 1..4
 * varies. --verify draws it again on this thread alone and fails when the
 * two pictures differ; --pgm writes the picture. */
#include <fut/fut.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_ITER = 1000 };

struct image {
    fut_pool *pool;
    size_t size;
    unsigned char *pixels; /* size * size, 1 inside the set, else 0 */
};

static unsigned char inside(const struct image *img, size_t x, size_t y)
{
    double cr = -2.0 + 2.5 * (double)x / (double)img->size;
    double ci = -1.25 + 2.5 * (double)y / (double)img->size;
    double zr = 0, zi = 0;
    for (int i = 0; i < MAX_ITER; i++) {
        double r2 = zr * zr, i2 = zi * zi;
        if (r2 + i2 > 4.0)
            return 0;
        zi = 2 * zr * zi + ci;
        zr = r2 - i2 + cr;
    }
    return 1;
}

static int rows(void *arg, size_t lo, size_t hi)
{
    struct image *img = arg;
    for (size_t y = lo; y < hi; y++)
        for (size_t x = 0; x < img->size; x++)
            img->pixels[y * img->size + x] = inside(img, x, y);
    return 0;
}

/* The whole picture, as one task: fut_parallel_for called from main would
 * compute on main's thread too, one more than the pool's size. */
static int draw(void *arg, void **value)
{
    (void)value;
    struct image *img = arg;
    /* one row per chunk: rows are long enough to be worth a steal */
    return fut_parallel_for(img->pool, 0, img->size, 1, rows, img);
}

static size_t count(const struct image *img)
{
    size_t n = 0;
    for (size_t i = 0; i < img->size * img->size; i++)
        n += img->pixels[i];
    return n;
}

static int write_pgm(const struct image *img, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return errno;
    fprintf(f, "P5\n%zu %zu\n1\n", img->size, img->size);
    size_t n = img->size * img->size;
    int err = fwrite(img->pixels, 1, n, f) == n ? 0 : EIO;
    if (fclose(f) != 0 && err == 0)
        err = EIO;
    return err;
}

int main(int argc, char **argv)
{
    struct image img = {NULL, 1200, NULL};
    int verify = 0;
    const char *pgm = NULL;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--verify") == 0) {
            verify = 1;
        } else if (strcmp(argv[i], "--pgm") == 0 && i + 1 < argc) {
            pgm = argv[++i];
        } else if ((img.size = strtoul(argv[i], &end, 10)) == 0 || *end ||
                   img.size > 20000) {
            fprintf(stderr, "usage: fut-mandel [SIZE (1..20000)] [--verify] [--pgm FILE]\n");
            return 2;
        }
    }
    img.pixels = malloc(img.size * img.size);
    if (!img.pixels) {
        fprintf(stderr, "fut-mandel: %s\n", fut_strerror(ENOMEM));
        return 1;
    }

    int err = fut_pool_create(&img.pool, NULL); /* FUT_THREADS, else the CPUs */
    if (err == 0) {
        fut_future *f = fut_spawn(img.pool, draw, &img);
        err = fut_await(f, NULL);
        fut_release(f);
        printf("%zu of %zu points inside, on %zu threads\n", count(&img),
               img.size * img.size, fut_pool_threads(img.pool));
        fut_pool_destroy(img.pool);
    }
    if (err == 0 && verify) {
        struct image alone = {NULL, img.size, malloc(img.size * img.size)};
        if (!alone.pixels) {
            err = ENOMEM;
        } else {
            rows(&alone, 0, alone.size);
            if (memcmp(alone.pixels, img.pixels, img.size * img.size) != 0) {
                fprintf(stderr, "fut-mandel: the pool's picture differs from one thread's\n");
                err = EIO;
            }
            free(alone.pixels);
        }
    }
    if (err == 0 && pgm)
        err = write_pgm(&img, pgm);
    if (err)
        fprintf(stderr, "fut-mandel: %s\n", fut_strerror(err));
    free(img.pixels);
    return err ? 1 : 0;
}
