/* Threads that free each other's blocks and exit, rounds of new threads
 * taking over the heaps of the old, allocation in thread-local
 * destructors (a pthread key's and a C++-style __cxa_thread_atexit one)
 * and in an atexit handler. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>

#include "common.h"

#define THREADS 8
#define ROUNDS 12
#define BLOCKS 3000

struct block {
    unsigned char *p;
    size_t n;
    unsigned char fill;
};

static struct block mailbox[THREADS][BLOCKS];
static pthread_barrier_t barrier;
static pthread_key_t key;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int destructor_runs, cxa_runs;

extern int __cxa_thread_atexit_impl(void (*)(void *), void *, void *);
extern void *__dso_handle;

static uint64_t next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Runs at thread exit, after the thread's last ordinary free. */
static void key_destructor(void *v) {
    char *copy = strdup((char *)v);
    void *big = malloc(300 << 10);
    CHECK(copy && big && strcmp(copy, "thread value") == 0);
    memset(big, 1, 300 << 10);
    free(big);
    free(copy);
    free(v);
    pthread_mutex_lock(&lock);
    destructor_runs++;
    pthread_mutex_unlock(&lock);
}

static void cxa_destructor(void *v) {
    void *p = realloc(v, 5000);
    CHECK(p != NULL);
    free(p);
    pthread_mutex_lock(&lock);
    cxa_runs++;
    pthread_mutex_unlock(&lock);
}

static void *worker(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t seed = 0x9e3779b97f4a7c15ull * (me + 1);
    pthread_setspecific(key, strdup("thread value"));
    __cxa_thread_atexit_impl(cxa_destructor, malloc(64), &__dso_handle);
    /* Fill the next thread's mailbox. */
    struct block *out = mailbox[(me + 1) % THREADS];
    for (int i = 0; i < BLOCKS; i++) {
        uint64_t r = next(&seed);
        size_t n = r % 64 == 0 ? 100000 + r % 300000 : 1 + r % 2000;
        out[i].n = n;
        out[i].fill = (unsigned char)(r >> 32);
        out[i].p = malloc(n);
        CHECK(out[i].p != NULL);
        memset(out[i].p, out[i].fill, n);
    }
    pthread_barrier_wait(&barrier);
    /* Free what the previous thread allocated, checking it is intact. */
    struct block *in = mailbox[me];
    for (int i = 0; i < BLOCKS; i++) {
        CHECK(malloc_usable_size(in[i].p) >= in[i].n);
        CHECK(in[i].p[0] == in[i].fill && in[i].p[in[i].n - 1] == in[i].fill);
        free(in[i].p);
    }
    return NULL;
}

static void at_exit(void) {
    char *p = malloc(100);
    char *q = calloc(1000, 1000);
    CHECK(p && q);
    snprintf(p, 100, "atexit allocated");
    free(q);
    printf("%s\n", p);
    free(p);
}

int main(void) {
    atexit(at_exit);
    pthread_key_create(&key, key_destructor);
    for (int round = 0; round < ROUNDS; round++) {
        pthread_t t[THREADS];
        pthread_barrier_init(&barrier, NULL, THREADS);
        for (int i = 0; i < THREADS; i++)
            CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
        for (int i = 0; i < THREADS; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&barrier);
    }
    CHECK(destructor_runs == THREADS * ROUNDS);
    CHECK(cxa_runs == THREADS * ROUNDS);
    return finish();
}
