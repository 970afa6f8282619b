/* Run with MEMIO_MALLOC_PERTURB=90 (0x5a): blocks come filled with
 * 0x5a ^ 0xff, calloc's with zeros; mallopt(M_PERTURB) changes the byte
 * and 0 turns the filling off. */
#include <malloc.h>

#include "common.h"

static int all(const unsigned char *p, size_t n, unsigned char byte) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != byte)
            return 0;
    return 1;
}

int main(void) {
    unsigned char *p = malloc(64);
    CHECK(p && all(p, 64, 0x5a ^ 0xff));
    unsigned char *big = malloc(1 << 20);
    CHECK(big && all(big, 1 << 20, 0x5a ^ 0xff));
    unsigned char *z = calloc(64, 1);
    CHECK(z && all(z, 64, 0));
    free(p);
    free(big);
    free(z);
    CHECK(mallopt(M_PERTURB, 0x33) == 1);
    p = malloc(100);
    CHECK(p && all(p, 100, 0x33 ^ 0xff));
    free(p);
    return finish();
}
