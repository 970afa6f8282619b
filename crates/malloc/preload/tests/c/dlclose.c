/* libmemio_malloc.so opened with dlopen (argv[1]), used by a thread, and
 * closed with dlclose while that thread still runs. Its pthread key
 * destructor runs when the thread exits: the library's code must still
 * be mapped then (and the heap's blocks and metadata stay valid anyway,
 * so an allocator must never be unloaded). */
#include <dlfcn.h>
#include <pthread.h>

#include "common.h"

static void *(*m_malloc)(size_t);
static void (*m_free)(void *);
static pthread_barrier_t step;

static void *user(void *arg) {
    (void)arg;
    void *p = m_malloc(32);
    CHECK(p != NULL);
    m_free(p);
    pthread_barrier_wait(&step); /* used the library */
    pthread_barrier_wait(&step); /* the library is closed: exit */
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: dlclose LIBRARY\n");
        return 2;
    }
    void *lib = open_library(argv[1]);
    m_malloc = (void *(*)(size_t))symbol(lib, "malloc");
    m_free = (void (*)(void *))symbol(lib, "free");
    pthread_barrier_init(&step, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, user, NULL);
    pthread_barrier_wait(&step);
    CHECK(dlclose(lib) == 0);
    pthread_barrier_wait(&step);
    pthread_join(t, NULL);
    printf("memio=1 failures=%d\n", failures);
    return failures != 0;
}
