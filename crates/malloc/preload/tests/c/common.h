/* Shared by the preload tests' C programs: a CHECK that names the failed
 * condition and its line, whether a library (libmemio_malloc.so,
 * valgrind's) is mapped, and opening a library with dlopen. */
#ifndef MEMIO_TEST_COMMON_H
#define MEMIO_TEST_COMMON_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
            failures++;                                                    \
        }                                                                  \
    } while (0)

/* Whether a mapping of this process has `name` in its path. */
static int mapped(const char *name) {
    char line[4096];
    int found = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, name))
            found = 1;
    fclose(f);
    return found;
}

/* Whether this process maps libmemio_malloc.so (so it is the allocator in
 * use when it was preloaded). */
static int using_memio(void) { return mapped("libmemio_malloc.so"); }

/* Opens the library at `path` with dlopen, or says why not and exits 1. */
static void *open_library(const char *path) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        exit(1);
    }
    return lib;
}

/* The address of `name` in `lib`, or says why not and exits 1. */
static void *symbol(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "dlsym %s: %s\n", name, dlerror());
        exit(1);
    }
    return p;
}

/* Prints the verdict the Rust side reads, and the exit status. */
static int finish(void) {
    printf("memio=%d failures=%d\n", using_memio(), failures);
    return failures ? 1 : 0;
}

#endif
