/* Allocates three blocks of 1000 bytes and frees them ("free") or leaks
 * them ("leak"): the leak report at exit must differ by exactly those
 * three blocks. */
#include "common.h"

int main(int argc, char **argv) {
    char *blocks[3];
    int leak = argc > 1 && strcmp(argv[1], "leak") == 0;
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
