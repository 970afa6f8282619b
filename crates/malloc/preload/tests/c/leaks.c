/* Allocates three blocks of 1000 bytes and frees them ("free") or leaks
 * them ("leak"): the leak report at exit must differ by exactly those
 * three blocks. "cross" frees, on other threads, blocks of 1000 bytes
 * that a thread which has exited allocated, and blocks the main thread
 * allocated: it leaks nothing, and must report what "free" reports. */
#include <pthread.h>

#include "common.h"

enum { CROSS = 2000 };
static char *cross[CROSS];

static void *make(void *arg) {
    (void)arg;
    for (int i = 0; i < CROSS; i++) {
        cross[i] = malloc(1000);
        CHECK(cross[i] != NULL);
        memset(cross[i], i, 1000);
    }
    return NULL;
}

static void *unmake(void *arg) {
    (void)arg;
    for (int i = 0; i < CROSS; i++)
        free(cross[i]);
    return NULL;
}

static void run(void *(*f)(void *)) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, f, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
}

int main(int argc, char **argv) {
    char *blocks[3];
    int leak = argc > 1 && strcmp(argv[1], "leak") == 0;
    if (argc > 1 && strcmp(argv[1], "cross") == 0) {
        run(make);   /* made by a thread that then exits */
        run(unmake); /* freed by another */
        make(NULL);  /* made by the main thread */
        run(unmake); /* freed by another */
    }
    for (int i = 0; i < 3; i++) {
        blocks[i] = malloc(1000);
        CHECK(blocks[i] != NULL);
        memset(blocks[i], i, 1000);
    }
    if (!leak)
        for (int i = 0; i < 3; i++)
            free(blocks[i]);
    return finish();
}
