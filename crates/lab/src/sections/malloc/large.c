/* Large blocks: buffers above 128 KiB (glibc's first mmap threshold), as
 * a program that reads files, decodes images or batches records uses them.
 *
 * Each round: 200 replacements in a working set of 8 blocks of 128 KiB-4
 * MiB, each new block written once per 4 KiB page as a program filling it
 * would; then a buffer grown by realloc from 256 KiB to 16 MiB in 64 KiB
 * steps, each step written. Marks at both ends of every block are checked
 * before it is freed. Prints a checksum that is the same under every
 * allocator.
 *
 * Usage: large ROUNDS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { LIVE = 8, PAGE = 4096 };

static uint64_t state = 0x9E3779B97F4A7C15ull;

static uint64_t next(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static void fail(const char *why)
{
    fprintf(stderr, "large: %s\n", why);
    exit(1);
}

/* Writes one byte per page of p[from..to) and the last byte. */
static void fill(unsigned char *p, size_t from, size_t to, unsigned char v)
{
    for (size_t at = from; at < to; at += PAGE)
        p[at] = v;
    p[to - 1] = v;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 1;
    unsigned char *live[LIVE] = {0};
    size_t sizes[LIVE] = {0};
    uint64_t sum = 0;
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < 200; i++) {
            uint64_t x = next();
            int k = (int)((x >> 3) % LIVE);
            if (live[k]) {
                if (live[k][0] != (unsigned char)k || live[k][sizes[k] - 1] != (unsigned char)k)
                    fail("a block's marks changed");
                sum += sizes[k] >> 10;
                free(live[k]);
            }
            sizes[k] = (128 << 10) + 1 + (size_t)((x >> 20) % ((4 << 20) - (128 << 10)));
            live[k] = malloc(sizes[k]);
            if (!live[k])
                fail("out of memory");
            fill(live[k], 0, sizes[k], (unsigned char)k);
        }
        size_t len = 256 << 10;
        unsigned char *buf = malloc(len);
        if (!buf)
            fail("out of memory");
        fill(buf, 0, len, 7);
        while (len < (16u << 20)) {
            unsigned char *grown = realloc(buf, len + (64 << 10));
            if (!grown)
                fail("out of memory");
            buf = grown;
            if (buf[0] != 7 || buf[len - 1] != 7)
                fail("realloc lost the contents");
            fill(buf, len, len + (64 << 10), 7);
            len += 64 << 10;
        }
        sum += len >> 10;
        free(buf);
    }
    for (int k = 0; k < LIVE; k++)
        free(live[k]);
    printf("%llu\n", (unsigned long long)sum);
    return 0;
}
