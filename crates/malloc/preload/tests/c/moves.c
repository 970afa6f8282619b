/* Threads that allocate, grow, shrink and free blocks of 1 B to 40 MiB at
 * random: large blocks move to another range when they cannot grow in
 * place (mremap), while the other threads map and unmap theirs at the
 * addresses the moves leave. Every block keeps its first byte, and the
 * heap keeps every block its own (a block it disowned is reported on
 * stderr and its realloc or free ignored). */
#include <pthread.h>
#include <stdint.h>

#include "common.h"

#define THREADS 4
#define SLOTS 8
#define OPS 50000

static void *worker(void *arg)
{
    uint64_t x = 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)arg;
    unsigned char *p[SLOTS] = {0};
    for (int op = 0; op < OPS; op++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int k = (int)(x % SLOTS);
        size_t size = ((size_t)1 << ((x >> 8) % 26)) + (size_t)((x >> 40) % 4096);
        if (size > (40u << 20))
            size = 40u << 20;
        if (!p[k]) {
            p[k] = malloc(size);
            CHECK(p[k] != NULL);
            if (!p[k])
                return NULL;
            p[k][0] = (unsigned char)(k + 1);
            continue;
        }
        CHECK(p[k][0] == (unsigned char)(k + 1));
        if (x >> 63) {
            unsigned char *q = realloc(p[k], size);
            CHECK(q != NULL);
            if (q)
                p[k] = q;
        } else {
            free(p[k]);
            p[k] = NULL;
        }
    }
    for (int k = 0; k < SLOTS; k++)
        free(p[k]);
    return NULL;
}

int main(void)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)(i + 1)) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    return finish();
}
