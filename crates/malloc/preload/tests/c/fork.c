/* fork while other threads allocate, then allocate and free in both
 * processes; fork+exec of this program, which reports whether the
 * preload followed it across exec. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define CHURNERS 4
#define FORKS 30

static atomic_int stop;

static void *churn(void *arg) {
    (void)arg;
    void *keep[64] = {0};
    unsigned i = 0;
    while (!atomic_load(&stop)) {
        unsigned slot = i++ % 64;
        free(keep[slot]);
        keep[slot] = malloc(slot % 8 == 0 ? 150000 : 16 + slot * 24);
    }
    for (int j = 0; j < 64; j++)
        free(keep[j]);
    return NULL;
}

/* Allocations of every kind; 0 when all went well. */
static int exercise(char *inherited) {
    int bad = strcmp(inherited, "from the parent") != 0;
    free(inherited);
    void *blocks[1000];
    for (int i = 0; i < 1000; i++) {
        blocks[i] = malloc(i % 100 == 0 ? 200000 : (size_t)i + 1);
        bad |= blocks[i] == NULL;
    }
    for (int i = 0; i < 1000; i++)
        free(blocks[i]);
    char *z = calloc(4096, 4);
    bad |= z == NULL || z[4095] != 0;
    free(z);
    return bad;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "exec-child") == 0) {
        /* Exit 0 when the preload is in use as the parent expects. */
        char *s = strdup("from the parent");
        return exercise(s) || using_memio() != atoi(argv[2]);
    }
    pthread_t t[CHURNERS];
    for (int i = 0; i < CHURNERS; i++)
        pthread_create(&t[i], NULL, churn, NULL);
    for (int i = 0; i < FORKS; i++) {
        char *s = strdup("from the parent");
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            _exit(exercise(s));
        }
        CHECK(exercise(s) == 0);
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < CHURNERS; i++)
        pthread_join(t[i], NULL);

    char expect[2] = {using_memio() ? '1' : '0', 0};
    pid_t pid = fork();
    if (pid == 0) {
        char *args[] = {argv[0], "exec-child", expect, NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return finish();
}
