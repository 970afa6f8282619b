/* Every exported function's edge cases, as glibc defines them. Run with
 * and without the preload: the shared checks hold for both; the ones
 * marked memio-only test where memio is stricter than glibc 2.36. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "common.h"

static int aligned(void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static void test_malloc_free(void) {
    for (size_t n = 0; n < (1 << 21); n = n ? n * 3 + 1 : 1) {
        unsigned char *p = malloc(n);
        CHECK(p != NULL);
        CHECK(aligned(p, 16));
        CHECK(malloc_usable_size(p) >= n);
        memset(p, 0xab, n);
        free(p);
    }
    void *z = malloc(0);
    CHECK(z != NULL);
    free(z);

    errno = 0;
    CHECK(malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(SIZE_MAX / 2) == NULL && errno == ENOMEM);

    /* free keeps errno, for small and large blocks and for NULL. */
    void *small = malloc(24), *large = malloc(4 << 20);
    errno = 12345;
    free(small);
    CHECK(errno == 12345);
    free(large);
    CHECK(errno == 12345);
    free(NULL);
    CHECK(errno == 12345);
    CHECK(malloc_usable_size(NULL) == 0);
}

/* free keeps errno on its rarer paths too: the last block of a page
 * (the page retires), whole segments of blocks, large blocks past the
 * large cache's budget, zero-size blocks, blocks freed by a thread that
 * never allocated, and after the purge delay has passed. */
static void *free_them(void *arg) {
    void **blocks = arg;
    errno = 777;
    for (int i = 0; i < 64; i++)
        free(blocks[i]);
    return (void *)(intptr_t)(errno == 777);
}

static void test_free_keeps_errno(void) {
    static void *many[20000];
    for (size_t n = 16; n <= (1 << 20); n *= 4) {
        size_t count = n < 4096 ? 20000 : 64;
        for (size_t i = 0; i < count; i++)
            many[i] = malloc(n);
        errno = 4321;
        for (size_t i = 0; i < count; i++)
            free(many[i]);
        CHECK(errno == 4321);
    }
    for (int i = 0; i < 40; i++)
        many[i] = malloc((size_t)8 << 20);
    errno = 4321;
    for (int i = 0; i < 40; i++)
        free(many[i]);
    CHECK(errno == 4321);
    void *z = malloc(0);
    errno = 4321;
    free(z);
    CHECK(errno == 4321);

    void *blocks[64];
    for (int i = 0; i < 64; i++)
        blocks[i] = malloc(i % 2 ? 40 : 300000);
    pthread_t t;
    void *kept;
    pthread_create(&t, NULL, free_them, blocks);
    pthread_join(t, &kept);
    CHECK(kept == (void *)1);

    /* Past the purge delay, frees purge and unmap what waited. */
    usleep(250 * 1000);
    for (int i = 0; i < 1000; i++)
        many[i] = malloc(i % 2 ? 5000 : 200000);
    errno = 4321;
    for (int i = 0; i < 1000; i++)
        free(many[i]);
    CHECK(errno == 4321);
}

static void test_calloc(void) {
    errno = 0;
    CHECK(calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc((size_t)1 << 33, (size_t)1 << 33) == NULL && errno == ENOMEM);
    /* Dirty blocks, then calloc must still hand out zeroes. */
    for (int round = 0; round < 2; round++) {
        for (size_t n = 1; n <= (1 << 20); n *= 4) {
            unsigned char *p = malloc(n);
            memset(p, 0xff, n);
            free(p);
            unsigned char *q = calloc(n, 1);
            CHECK(q != NULL);
            size_t nonzero = 0;
            for (size_t i = 0; i < n; i++)
                nonzero += q[i] != 0;
            CHECK(nonzero == 0);
            free(q);
        }
    }
    void *z = calloc(0, 10);
    CHECK(z != NULL);
    free(z);
}

static void test_realloc(void) {
    /* NULL: as malloc. */
    char *p = realloc(NULL, 10);
    CHECK(p != NULL);
    strcpy(p, "memio");
    /* Growth through small and large sizes keeps the contents. */
    for (size_t n = 16; n <= (8 << 20); n *= 2) {
        p = realloc(p, n);
        CHECK(p != NULL && strcmp(p, "memio") == 0);
        CHECK(malloc_usable_size(p) >= n);
        memset(p + 6, 'x', n - 7);
        p[n - 1] = 0;
    }
    for (size_t n = 8 << 20; n >= 8; n /= 2) {
        p = realloc(p, n);
        CHECK(p != NULL && strncmp(p, "memio", 5) == 0);
    }
    /* Failure leaves the block alone. */
    errno = 0;
    CHECK(realloc(p, SIZE_MAX - 4096) == NULL && errno == ENOMEM);
    CHECK(strncmp(p, "memio", 5) == 0);
    /* Size 0 frees and returns NULL, as glibc does. */
    CHECK(realloc(p, 0) == NULL);

    char *a = reallocarray(NULL, 10, 10);
    CHECK(a != NULL);
    memset(a, 1, 100);
    errno = 0;
    CHECK(reallocarray(a, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    CHECK(a[99] == 1);
    a = reallocarray(a, 1000, 10);
    CHECK(a != NULL && a[99] == 1);
    free(a);
}

static void test_aligned(void) {
    void *p = (void *)1;
    errno = 0;
    CHECK(posix_memalign(&p, 24, 8) == EINVAL);
    CHECK(posix_memalign(&p, 4, 8) == EINVAL); /* below sizeof(void *) */
    CHECK(posix_memalign(&p, 0, 8) == EINVAL);
    CHECK(posix_memalign(&p, 48, 8) == EINVAL);
    CHECK(p == (void *)1);
    CHECK(errno == 0); /* posix_memalign returns errors, errno untouched */
    CHECK(posix_memalign(&p, 8, SIZE_MAX - 8) == ENOMEM);
    CHECK(p == (void *)1);

    for (size_t a = sizeof(void *); a <= (1 << 20); a *= 2) {
        for (size_t n = 1; n <= (1 << 20); n *= 7) {
            void *q = NULL;
            CHECK(posix_memalign(&q, a, n) == 0);
            CHECK(q != NULL && aligned(q, a));
            memset(q, 0x5a, n);
            CHECK(malloc_usable_size(q) >= n);
            free(q);

            unsigned char *m = memalign(a, n);
            CHECK(m != NULL && aligned(m, a));
            memset(m, 0x5a, n);
            free(m);

            unsigned char *al = aligned_alloc(a, n);
            CHECK(al != NULL && aligned(al, a));
            memset(al, 0x5a, n);
            free(al);
        }
    }
    /* memalign rounds an alignment that is not a power of two up. */
    void *m = memalign(24, 100);
    CHECK(m != NULL && aligned(m, 32));
    free(m);
    errno = 0;
    CHECK(memalign(64, SIZE_MAX - 64) == NULL && errno == ENOMEM);

    long page = sysconf(_SC_PAGESIZE);
    unsigned char *v = valloc(1);
    CHECK(v != NULL && aligned(v, page));
    free(v);
    unsigned char *pv = pvalloc(1);
    CHECK(pv != NULL && aligned(pv, page));
    CHECK(malloc_usable_size(pv) >= (size_t)page);
    memset(pv, 1, page);
    free(pv);
    errno = 0;
    CHECK(pvalloc(SIZE_MAX - 10) == NULL && errno == ENOMEM);
}

static void test_info(void) {
    void *blocks[100];
    for (int i = 0; i < 100; i++)
        blocks[i] = malloc(1000);
    /* Above glibc's largest dynamic mmap threshold (32 MiB). */
    void *big = malloc(64 << 20);
    struct mallinfo2 m = mallinfo2();
    CHECK(m.uordblks >= 100 * 1000);
    CHECK(m.hblks >= 1 && m.hblkhd >= (64 << 20));
    struct mallinfo old = mallinfo();
    CHECK(old.uordblks > 0);
    for (int i = 0; i < 100; i++)
        free(blocks[i]);
    free(big);
    CHECK(mallopt(M_MMAP_THRESHOLD, 64 * 1024) == 1);
    CHECK(mallopt(M_TRIM_THRESHOLD, 1 << 20) == 1);
    CHECK(mallopt(M_ARENA_MAX, 2) == 1);
    int trimmed = malloc_trim(0);
    CHECK(trimmed == 0 || trimmed == 1);
    malloc_stats();
}

/* Where memio differs from glibc 2.36: it crashes on a foreign pointer,
 * accepts any aligned_alloc alignment before 2.38, and lets
 * posix_memalign's failure leak into errno. */
static void test_memio_only(void) {
    static char not_heap[64];
    long on_stack[8];
    errno = 0;
    CHECK(aligned_alloc(24, 100) == NULL && errno == EINVAL);
    /* glibc sets errno here although POSIX says the error is returned. */
    void *unset = (void *)1;
    errno = 0;
    CHECK(posix_memalign(&unset, 8, SIZE_MAX - 8) == ENOMEM && errno == 0);
    errno = 77;
    free(not_heap + 16); /* warned about once, ignored */
    free(on_stack);
    CHECK(errno == 77);
    errno = 0;
    CHECK(realloc(on_stack, 100) == NULL && errno == ENOMEM);
    CHECK(malloc_usable_size(not_heap + 16) == 0);
    /* The threshold took effect: 100 KiB now gets its own mapping. */
    struct mallinfo2 before = mallinfo2();
    void *p = malloc(100 << 10);
    struct mallinfo2 after = mallinfo2();
    CHECK(after.hblks == before.hblks + 1);
    free(p);
    /* Trim after freeing a lot reports memory given back. */
    void *many[4096];
    for (int i = 0; i < 4096; i++)
        many[i] = malloc(512);
    for (int i = 0; i < 4096; i++)
        free(many[i]);
    CHECK(malloc_trim(0) == 1);
}

int main(void) {
    test_malloc_free();
    test_free_keeps_errno();
    test_calloc();
    test_realloc();
    test_aligned();
    test_info();
    if (using_memio())
        test_memio_only();
    return finish();
}
