/* libmemio_malloc.so opened with dlopen (argv[1]) instead of preloaded:
 * its thread's heap pointer lives in static TLS, which glibc must set up
 * in threads that already run when the library arrives as well as in
 * those started after. Each thread allocates through the library's own
 * malloc family (dlsym), checks its blocks, frees some of another
 * thread's, and exits (the library's key destructor gives its heap back). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>

#include "common.h"

#define THREADS 8
#define BLOCKS 2000

static void *(*m_malloc)(size_t);
static void (*m_free)(void *);
static void *(*m_realloc)(void *, size_t);
static size_t (*m_usable)(void *);

static pthread_barrier_t loaded;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int thread_failures;
/* Blocks a thread hands to the next one to free. */
static unsigned char *handed[THREADS * 2][BLOCKS / 4];

static void fail(void) {
    pthread_mutex_lock(&lock);
    thread_failures++;
    pthread_mutex_unlock(&lock);
}

static void work(int id) {
    static __thread unsigned char *mine[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        size_t n = (size_t)(i * 37 + id) % 1500;
        mine[i] = m_malloc(n);
        if (!mine[i] || (uintptr_t)mine[i] % 16 || m_usable(mine[i]) < n) {
            fail();
            return;
        }
        memset(mine[i], id + 1, n);
    }
    for (int i = 0; i < BLOCKS; i++) {
        size_t n = (size_t)(i * 37 + id) % 1500;
        for (size_t j = 0; j < n; j++)
            if (mine[i][j] != (unsigned char)(id + 1)) {
                fail();
                return;
            }
        if (i % 4 == 0) {
            mine[i] = m_realloc(mine[i], n + 100);
            if (!mine[i]) {
                fail();
                return;
            }
        }
    }
    for (int i = 0; i < BLOCKS; i++) {
        if (i % 4 == 1)
            handed[id][i / 4] = mine[i];
        else
            m_free(mine[i]);
    }
}

static void *early(void *arg) {
    int id = (int)(intptr_t)arg;
    /* Started before the library is opened. */
    pthread_barrier_wait(&loaded);
    pthread_barrier_wait(&loaded);
    work(id);
    return NULL;
}

static void *late(void *arg) {
    work((int)(intptr_t)arg);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: dlopen LIBRARY\n");
        return 2;
    }
    pthread_t t[THREADS * 2];
    pthread_barrier_init(&loaded, NULL, THREADS + 1);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, early, (void *)(intptr_t)i);
    pthread_barrier_wait(&loaded);

    void *lib = open_library(argv[1]);
    m_malloc = (void *(*)(size_t))symbol(lib, "malloc");
    m_free = (void (*)(void *))symbol(lib, "free");
    m_realloc = (void *(*)(void *, size_t))symbol(lib, "realloc");
    m_usable = (size_t(*)(void *))symbol(lib, "malloc_usable_size");

    pthread_barrier_wait(&loaded);
    work(THREADS * 2 - 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = THREADS; i < THREADS * 2 - 1; i++)
        pthread_create(&t[i], NULL, late, (void *)(intptr_t)i);
    for (int i = THREADS; i < THREADS * 2 - 1; i++)
        pthread_join(t[i], NULL);
    /* Every thread's handed blocks, freed here, by another thread. */
    for (int i = 0; i < THREADS * 2; i++)
        for (int j = 0; j < BLOCKS / 4; j++)
            m_free(handed[i][j]);
    CHECK(thread_failures == 0);
    printf("memio=1 failures=%d\n", failures);
    return failures != 0;
}
