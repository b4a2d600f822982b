/* fut-checksum: checksums every file under a directory, in parallel, with
 * the errors of the files it cannot read reported one by one and the rest
 * summed (issue 10's first example program).
 *
 *   fut-checksum [--serial] DIR
 *
 * One task per file computes its FNV-1a hash and size; fut_catch turns a
 * failed file into a result that carries its error, so one unreadable file
 * does not fail the whole; fut_all_values gathers the results in the
 * order the files were found. --serial does the same on this thread alone,
 * for comparison: the two print the same lines. Exit status: 0, 1 when a
 * file could not be read, 2 on bad usage. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <fut/fut.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct file {
    char *path;
    uint64_t hash, bytes;
    int error; /* 0, or why it could not be read */
} file;

static file *files;
static size_t nfiles, cap;

static int found(const char *path, const struct stat *st, int type,
                 struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type != FTW_F && type != FTW_SL && type != FTW_SLN)
        return 0;
    if (nfiles == cap) {
        cap = cap ? 2 * cap : 64;
        file *more = realloc(files, cap * sizeof(*files));
        if (!more)
            return ENOMEM;
        files = more;
    }
    files[nfiles] = (file){.path = strdup(path)};
    return files[nfiles++].path ? 0 : ENOMEM;
}

/* A task: hashes one file (FNV-1a, 64 bits). Its value is the file. */
static int hash_file(void *arg, void **value)
{
    file *f = arg;
    int fd = open(f->path, O_RDONLY);
    if (fd < 0)
        return errno;
    uint64_t h = 0xcbf29ce484222325u;
    unsigned char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            h = (h ^ buf[i]) * 0x100000001b3u;
        f->bytes += (uint64_t)n;
    }
    int err = n < 0 ? errno : 0;
    close(fd);
    if (err)
        return err;
    f->hash = h;
    *value = f;
    return 0;
}

/* fut_catch: a file that failed becomes a result that says why. */
static int note_error(void *arg, int error, void *input, void **value)
{
    (void)input;
    file *f = arg;
    f->error = error;
    *value = f;
    return 0;
}

/* Prints each error and the sum; returns the number of errors. */
static size_t report(void *const results[], size_t n)
{
    uint64_t all = 0, bytes = 0;
    size_t errors = 0;
    for (size_t i = 0; i < n; i++) {
        const file *f = results[i];
        if (f->error) {
            printf("error: %s: %s\n", f->path, fut_strerror(f->error));
            errors++;
        } else {
            all ^= f->hash;
            bytes += f->bytes;
        }
    }
    printf("%zu files, %llu bytes, %zu unreadable, checksum %016llx\n", n,
           (unsigned long long)bytes, errors, (unsigned long long)all);
    return errors;
}

int main(int argc, char **argv)
{
    int serial = argc == 3 && !strcmp(argv[1], "--serial");
    if (argc != 2 + serial || argv[1 + serial][0] == '-') {
        fprintf(stderr, "usage: fut-checksum [--serial] DIR\n");
        return 2;
    }
    int rc = nftw(argv[1 + serial], found, 32, FTW_PHYS);
    if (rc) {
        fprintf(stderr, "fut-checksum: %s: %s\n", argv[1 + serial],
                rc < 0 ? strerror(errno) : fut_strerror(rc));
        return 2;
    }
    void **results = malloc((nfiles ? nfiles : 1) * sizeof(*results));
    size_t errors = 0;
    if (!results) {
        rc = ENOMEM;
    } else if (serial) {
        for (size_t i = 0; i < nfiles; i++) {
            void *v = NULL;
            int err = hash_file(&files[i], &v);
            note_error(&files[i], err, v, &results[i]);
        }
        errors = report(results, nfiles);
    } else {
        fut_pool *pool = NULL;
        rc = fut_pool_create(&pool, NULL);
        fut_future **each = rc ? NULL : malloc((nfiles + 1) * sizeof(*each));
        if (!rc && !each)
            rc = ENOMEM;
        if (!rc) {
            for (size_t i = 0; i < nfiles; i++)
                each[i] = fut_catch(fut_spawn(pool, hash_file, &files[i]),
                                    note_error, &files[i]);
            fut_future *all = fut_all_values(each, nfiles);
            void *gathered;
            rc = fut_await(all, &gathered); /* only ENOMEM can fail it */
            if (!rc) {
                if (nfiles) /* else gathered is NULL */
                    memcpy(results, gathered, nfiles * sizeof(*results));
                errors = report(results, nfiles);
            }
            fut_release(all);
            for (size_t i = 0; i < nfiles; i++)
                fut_release(each[i]);
        }
        free(each);
        if (pool)
            fut_pool_destroy(pool);
    }
    for (size_t i = 0; i < nfiles; i++)
        free(files[i].path);
    free(files);
    free(results);
    if (rc) {
        fprintf(stderr, "fut-checksum: %s\n", fut_strerror(rc));
        return 2;
    }
    return errors ? 1 : 0;
}
