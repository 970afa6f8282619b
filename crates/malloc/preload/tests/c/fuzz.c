/* A seeded random sequence of calls to the malloc family, each checked
 * against a model: a table of live blocks, each block filled with a
 * pattern made from its id and its byte offsets.
 *
 *   fuzz SEED [OPS [THREADS]]
 *
 * THREADS tables (default 1) of OPS calls each (default 200000). With
 * more than one, THREADS threads take the tables in turn, ROUND calls at
 * a time, so every table's calls are the same whichever thread makes
 * them, and blocks are freed by threads other than the one that
 * allocated them.
 *
 * Checked on every call: contents intact up to the size asked for (up to
 * the smaller size across realloc), alignment, malloc_usable_size at
 * least the size asked for (and every usable byte writable), calloc
 * memory zero, failures leaving the block alone, and the errno rules of
 * glibc (free keeps errno; overflowing calloc and reallocarray, and
 * impossible sizes, give NULL and ENOMEM; posix_memalign returns EINVAL
 * for a bad alignment and leaves its out-pointer alone). Every few
 * rounds, no two live blocks of any table overlap.
 *
 * It prints "seed=S ops=N threads=T checksum=X": X sums the calls made
 * and their outcomes, none of which depends on the allocator (no
 * addresses, no usable sizes), so any correct malloc prints the same.
 * Then the verdict line of common.h. The first violation ends the
 * program with status 1 and a message naming the table, call and check. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <unistd.h>

#include "common.h"

#define SLOTS 256
#define ROUND 1000
#define MAX_THREADS 16
/* A size no allocator can give: a quarter of the address space. Not
 * negative as a signed value, which valgrind would report as an error. */
#define HUGE ((size_t)1 << 62)

struct slot {
    unsigned char *p; /* NULL when the slot is empty */
    size_t size;      /* asked for */
    size_t align;     /* promised */
    uint64_t id;
};

struct table {
    struct slot s[SLOTS];
    uint64_t rng, next_id, sum, op;
    int index;
};

static struct table tables[MAX_THREADS];
static int nthreads;
static long ops;
static unsigned long long seed;
static size_t page;
static pthread_barrier_t barrier;
/* Whether failed calls must set errno to ENOMEM: not under valgrind,
 * whose replacement functions (3.19) leave errno alone when they fail. */
static int enomem_sets_errno = 1;

static void fail(const struct table *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz: seed %llu table %d call %llu: ", seed, t->index,
            (unsigned long long)t->op);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t next(struct table *t) { return t->rng = mix(t->rng); }

/* Folds one outcome into the table's checksum. */
static void note(struct table *t, uint64_t v) { t->sum = mix(t->sum ^ v); }

/* Byte i of block id's pattern: word i / 8 of the pattern, little end
 * first. */
static uint64_t word(uint64_t id, size_t w) {
    return mix(id * 0x100000001b3ull ^ w);
}

static unsigned char byte(uint64_t id, size_t i) {
    return (unsigned char)(word(id, i / 8) >> (8 * (i % 8)));
}

/* Writes the pattern of `id` over bytes [from, to) of p. */
static void fill(unsigned char *p, uint64_t id, size_t from, size_t to) {
    while (from < to && from % 8)
        p[from] = byte(id, from), from++;
    for (; from + 8 <= to; from += 8) {
        uint64_t w = word(id, from / 8);
        memcpy(p + from, &w, 8);
    }
    for (; from < to; from++)
        p[from] = byte(id, from);
}

/* The first of bytes [0, n) of p that does not hold the pattern of `id`;
 * SIZE_MAX when all do. */
static size_t intact(const unsigned char *p, uint64_t id, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w != word(id, i / 8))
            break;
    }
    for (; i < n; i++)
        if (p[i] != byte(id, i))
            return i;
    return SIZE_MAX;
}

/* Fails unless slot k's first n bytes are intact. */
static void expect_intact(struct table *t, int k, size_t n, const char *when) {
    const struct slot *s = &t->s[k];
    size_t bad = intact(s->p, s->id, n);
    if (bad != SIZE_MAX)
        fail(t, "%s: slot %d (block %p, %zu bytes asked for): byte %zu changed",
             when, k, (void *)s->p, s->size, bad);
}

/* A size: mostly small, some pages, a few large blocks. */
static size_t size_of_call(struct table *t) {
    uint64_t r = next(t);
    switch (r % 100) {
    case 0:
        return 1 + (r >> 8) % (r % 500 == 0 ? 1 << 21 : 300 << 10);
    case 1 ... 9:
        return 1 + (r >> 8) % 32768;
    case 10 ... 29:
        return 129 + (r >> 8) % 4000;
    case 30 ... 31:
        return 0;
    default:
        return 1 + (r >> 8) % 128;
    }
}

/* A power of two from 1 to 64 KiB, rarely 2 MiB. */
static size_t power_of_two(struct table *t) {
    uint64_t r = next(t);
    return r % 200 == 0 ? (size_t)1 << 21 : (size_t)1 << (r >> 8) % 17;
}

/* Checks a block handed out for `size` bytes aligned to `align` and
 * fills it (and its usable tail, sometimes) for slot k. */
static void take(struct table *t, int k, void *v, size_t size, size_t align,
                 int zeroed) {
    unsigned char *p = v;
    if (!p)
        fail(t, "no block for %zu bytes", size);
    if ((uintptr_t)p % align)
        fail(t, "block %p for %zu bytes not aligned to %zu", v, size, align);
    size_t usable = malloc_usable_size(p);
    if (usable < size)
        fail(t, "block %p: usable size %zu below %zu asked for", v, usable,
             size);
    if (zeroed)
        for (size_t i = 0; i < size; i++)
            if (p[i])
                fail(t, "calloc block %p of %zu bytes: byte %zu not zero", v,
                     size, i);
    t->s[k] = (struct slot){p, size, align, t->next_id++};
    fill(p, t->s[k].id, 0, next(t) % 8 == 0 ? usable : size);
    note(t, size * 131 + align);
}

static void allocate(struct table *t, int k) {
    uint64_t r = next(t);
    size_t n = size_of_call(t), a;
    void *p = NULL;
    switch (r % 10) {
    case 0: {
        /* n split into count * each, the rest dropped. */
        size_t count = 1 + r / 16 % 16, each = n / count;
        take(t, k, calloc(count, each), count * each, 16, 1);
        return;
    }
    case 1:
        a = power_of_two(t);
        if (a < sizeof(void *))
            a = sizeof(void *);
        if (posix_memalign(&p, a, n) != 0)
            fail(t, "posix_memalign(%zu, %zu) failed", a, n);
        take(t, k, p, n, a, 0);
        return;
    case 2:
        a = power_of_two(t);
        take(t, k, aligned_alloc(a, n), n, a, 0);
        return;
    case 3:
        /* Any alignment: glibc rounds it up to a power of two. */
        a = 1 + r / 16 % 5000;
        p = memalign(a, n);
        while (a & (a - 1))
            a++;
        take(t, k, p, n, a, 0);
        return;
    case 4:
        take(t, k, valloc(n), n, page, 0);
        return;
    case 5:
        take(t, k, realloc(NULL, n), n, 16, 0);
        return;
    default:
        take(t, k, malloc(n), n, 16, 0);
    }
}

static void release(struct table *t, int k) {
    struct slot *s = &t->s[k];
    expect_intact(t, k, s->size, "before free");
    int e = (int)(next(t) % 200) + 1;
    errno = e;
    free(s->p);
    if (errno != e)
        fail(t, "free changed errno from %d to %d", e, errno);
    s->p = NULL;
    note(t, 1);
}

static void resize(struct table *t, int k) {
    struct slot *s = &t->s[k];
    uint64_t r = next(t);
    size_t old = s->size;
    /* A quarter near the old size (up to 32 bytes less, 31 more). */
    size_t n = r % 4 ? size_of_call(t)
                     : old + r / 4 % 64 - (old < 32 ? old : 32);
    unsigned char *q;
    if (n == 0) {
        /* Size 0 frees and returns NULL, as glibc does. */
        expect_intact(t, k, old, "before realloc to 0");
        if (realloc(s->p, 0) != NULL)
            fail(t, "realloc(p, 0) returned a block");
        s->p = NULL;
        note(t, 2);
        return;
    }
    if (r % 8 == 2) {
        size_t m = 1 + r / 8 % 7 % n;
        while (n % m)
            m--;
        q = reallocarray(s->p, m, n / m);
    } else {
        q = realloc(s->p, n);
    }
    if (!q)
        fail(t, "realloc of slot %d from %zu to %zu bytes failed", k, old, n);
    if ((uintptr_t)q % 16)
        fail(t, "realloc gave %p, not aligned to 16", (void *)q);
    s->p = q;
    expect_intact(t, k, old < n ? old : n, "after realloc");
    s->size = n;
    s->align = 16;
    size_t usable = malloc_usable_size(q);
    if (usable < n)
        fail(t, "realloc'd block %p: usable size %zu below %zu", (void *)q,
             usable, n);
    if (old < n)
        fill(q, s->id, old, n);
    note(t, n * 7 + 3);
}

/* Whether errno says ENOMEM after a failed call, where it must. */
static int enomem(void) { return errno == ENOMEM || !enomem_sets_errno; }

/* Calls that must fail, and leave any block they were given alone. */
static void refuse(struct table *t, int k) {
    struct slot *s = &t->s[k];
    void *p = (void *)&p;
    uint64_t r = next(t);
    errno = 0;
    switch (r % 6) {
    case 0:
        if (malloc(HUGE) != NULL || !enomem())
            fail(t, "malloc(2^62) did not fail with ENOMEM (errno %d)", errno);
        break;
    case 1:
        if (calloc(HUGE, 8) != NULL || !enomem())
            fail(t, "overflowing calloc did not fail with ENOMEM (errno %d)",
                 errno);
        break;
    case 2:
        if (posix_memalign(&p, sizeof(void *) * 3, 64) != EINVAL ||
            posix_memalign(&p, 4, 64) != EINVAL || p != (void *)&p ||
            errno != 0)
            fail(t, "posix_memalign took a bad alignment");
        break;
    case 3:
        if (posix_memalign(&p, 64, HUGE) != ENOMEM || p != (void *)&p)
            fail(t, "posix_memalign(64, 2^62) did not return ENOMEM");
        break;
    default:
        if (!s->p)
            break;
        if ((r % 2 ? realloc(s->p, HUGE) : reallocarray(s->p, HUGE, 8)) ||
            !enomem())
            fail(t, "impossible realloc of slot %d: no ENOMEM (errno %d)", k,
                 errno);
        expect_intact(t, k, s->size, "after a failed realloc");
    }
    note(t, 4 + r % 6);
}

/* One call on table t. */
static void step(struct table *t) {
    uint64_t r = next(t);
    int k = (int)(r % SLOTS);
    struct slot *s = &t->s[k];
    t->op++;
    if (r / SLOTS % 50 == 0) {
        refuse(t, k);
    } else if (!s->p) {
        allocate(t, k);
    } else if (r / SLOTS % 10 < 5) {
        release(t, k);
    } else if (r / SLOTS % 10 < 8) {
        resize(t, k);
    } else {
        /* Any byte may have changed under another block's writes. */
        expect_intact(t, k, s->size, "between calls");
        if (malloc_usable_size(s->p) < s->size)
            fail(t, "usable size of slot %d shrank below %zu", k, s->size);
        note(t, 5);
    }
}

struct extent {
    uintptr_t start, end;
    int table, slot;
};

static int by_start(const void *a, const void *b) {
    const struct extent *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* No two live blocks of any table overlap (a 0-byte block counts as 1). */
static void no_overlap(void) {
    static struct extent e[MAX_THREADS * SLOTS];
    int n = 0;
    for (int i = 0; i < nthreads; i++)
        for (int k = 0; k < SLOTS; k++)
            if (tables[i].s[k].p) {
                uintptr_t p = (uintptr_t)tables[i].s[k].p;
                size_t size = tables[i].s[k].size;
                e[n++] = (struct extent){p, p + (size ? size : 1), i, k};
            }
    qsort(e, n, sizeof e[0], by_start);
    for (int i = 1; i < n; i++)
        if (e[i].start < e[i - 1].end)
            fail(&tables[e[i].table], "slot %d overlaps table %d slot %d",
                 e[i].slot, e[i - 1].table, e[i - 1].slot);
}

/* Thread `me`: in round r, ROUND calls on table (me + r) % nthreads. */
static void *worker(void *arg) {
    int me = (int)(intptr_t)arg;
    for (long done = 0, round = 0; done < ops; done += ROUND, round++) {
        struct table *t = &tables[(me + round) % nthreads];
        for (long i = done; i < ops && i < done + ROUND; i++)
            step(t);
        if (nthreads > 1)
            pthread_barrier_wait(&barrier);
        if (round % 8 == 7 && me == 0)
            no_overlap();
        if (nthreads > 1)
            pthread_barrier_wait(&barrier);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: fuzz SEED [OPS [THREADS]]\n");
        return 2;
    }
    seed = strtoull(argv[1], NULL, 10);
    ops = argc > 2 ? atol(argv[2]) : 200000;
    nthreads = argc > 3 ? atoi(argv[3]) : 1;
    if (nthreads < 1 || nthreads > MAX_THREADS) {
        fprintf(stderr, "fuzz: 1 to %d threads\n", MAX_THREADS);
        return 2;
    }
    page = (size_t)sysconf(_SC_PAGESIZE);
    enomem_sets_errno = !mapped("vgpreload_memcheck");
    for (int i = 0; i < nthreads; i++) {
        tables[i].index = i;
        tables[i].next_id = (uint64_t)i << 48;
        tables[i].rng = mix(seed * MAX_THREADS + i);
    }
    if (nthreads == 1) {
        worker(0);
    } else {
        pthread_t th[MAX_THREADS];
        pthread_barrier_init(&barrier, NULL, nthreads);
        for (int i = 0; i < nthreads; i++)
            if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) != 0)
                fail(&tables[i], "pthread_create failed");
        for (int i = 0; i < nthreads; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&barrier);
    }
    no_overlap();
    uint64_t sum = 0;
    for (int i = 0; i < nthreads; i++) {
        for (int k = 0; k < SLOTS; k++)
            if (tables[i].s[k].p)
                release(&tables[i], k);
        sum = mix(sum ^ tables[i].sum);
    }
    printf("seed=%llu ops=%ld threads=%d checksum=%016llx\n", seed, ops,
           nthreads, (unsigned long long)sum);
    return finish();
}
