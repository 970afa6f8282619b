/* One wrong use of the heap per run, chosen by argv[1]:
 *
 *   double            a 24-byte block freed twice
 *   interior          free of an address 8 bytes inside a 40-byte block
 *   overrun           a NUL written just past a 20-byte block, then free
 *   realloc-overrun   the same, then realloc
 *   guard             one byte written just past a block of 1 MiB - 96
 *                     bytes (large: a mapping of its own, whose last page
 *                     it does not fill)
 *   guard-odd         the same past a block of 1000001 bytes, then free
 *
 * It prints the block's address first ("block 0x..."), flushed, so the
 * test can match the report. If the heap lets it carry on, it checks that
 * the heap is whole: blocks of the same size handed out afterwards are
 * distinct and none overlaps a block still in use; then prints
 * "survived" and the verdict. */
#include <stdint.h>

#include "common.h"

#define N 64

/* Allocates N blocks of `size` and checks that none is handed out twice
 * and none overlaps [live, live + live_size). */
static void heap_is_whole(size_t size, const char *live, size_t live_size) {
    char *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = malloc(size);
        CHECK(b[i] != NULL);
        memset(b[i], i, size);
        CHECK(!live || b[i] + size <= live || b[i] >= live + live_size);
        for (int j = 0; j < i; j++)
            CHECK(b[i] != b[j]);
    }
    for (int i = 0; i < N; i++)
        free(b[i]);
}

static char *block(size_t size) {
    char *p = malloc(size);
    CHECK(p != NULL);
    memset(p, 'a', size);
    printf("block %p\n", (void *)p);
    fflush(stdout);
    return p;
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "";
    /* Keeps the page of each size in use, so a freed block's page stays. */
    void *keep24 = malloc(24), *keep40 = malloc(40), *keep20 = malloc(20);
    if (strcmp(what, "double") == 0) {
        char *p = block(24);
        free(p);
        free(p);
        heap_is_whole(24, NULL, 0);
    } else if (strcmp(what, "interior") == 0) {
        char *p = block(40);
        free(p + 8);
        heap_is_whole(40, p, 40);
        CHECK(p[39] == 'a');
        free(p);
    } else if (strcmp(what, "overrun") == 0) {
        char *p = block(20);
        p[20] = 0;
        free(p);
        heap_is_whole(20, NULL, 0);
    } else if (strcmp(what, "realloc-overrun") == 0) {
        char *p = block(20);
        p[20] = 0;
        char *q = realloc(p, 40);
        if (q)
            free(q);
        heap_is_whole(20, NULL, 0);
    } else if (strcmp(what, "large-slack") == 0) {
        /* The second block reuses the first one's cached 4 MiB mapping:
         * megabytes of slack after the request, of which only the bytes
         * right after it are canary. */
        free(block(4 << 20));
        char *p = block(1000001);
        p[1000001] = 1;
        free(p);
    } else if (strcmp(what, "guard") == 0) {
        char *p = block((1 << 20) - 96);
        p[(1 << 20) - 96] = 1;
        free(p);
    } else if (strcmp(what, "guard-odd") == 0) {
        char *p = block(1000001);
        p[1000001] = 1;
        free(p);
    } else {
        fprintf(stderr, "unknown case '%s'\n", what);
        return 2;
    }
    free(keep24);
    free(keep40);
    free(keep20);
    printf("survived\n");
    return finish();
}
