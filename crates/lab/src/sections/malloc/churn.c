/* Small-object churn: the heap traffic of a program that builds and drops
 * many small records (a parser, an interpreter, a compiler's nodes).
 *
 * Each round: 200k random replacements in a working set of 64 Ki blocks of
 * 16-256 B; a linked list of 100k nodes built and freed in order; 20k
 * strings grown by realloc, a piece at a time, to 64 B-1 KiB and freed.
 * Every block carries marks that are checked before it is freed, so a heap
 * that hands out overlapping blocks fails the run. Prints a checksum that
 * is the same under every allocator.
 *
 * Usage: churn ROUNDS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state = 0x9E3779B97F4A7C15ull;

static uint64_t next(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "churn: out of memory\n");
        exit(1);
    }
    return p;
}

static void corrupt(const char *what)
{
    fprintf(stderr, "churn: %s: a block's marks changed\n", what);
    exit(1);
}

struct node {
    struct node *next;
    uint32_t size;
    unsigned char data[];
};

enum { SLOTS = 1 << 16 };

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 1;
    unsigned char **slots = calloc(SLOTS, sizeof *slots);
    uint64_t sum = 0;
    if (!slots)
        return 1;
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < 200000; i++) {
            uint64_t x = next();
            size_t k = (x >> 3) & (SLOTS - 1);
            size_t size = 16 + (x >> 32) % 240;
            unsigned char *old = slots[k];
            if (old) {
                if (old[old[0] - 1] != (unsigned char)k)
                    corrupt("working set");
                sum += old[0];
                free(old);
            }
            unsigned char *p = xmalloc(size);
            p[0] = (unsigned char)size;
            p[size - 1] = (unsigned char)k;
            slots[k] = p;
        }
        struct node *head = NULL;
        for (uint32_t i = 0; i < 100000; i++) {
            uint32_t size = 8 + next() % 113;
            struct node *n = xmalloc(sizeof *n + size);
            n->next = head;
            n->size = size;
            n->data[size - 1] = (unsigned char)i;
            head = n;
        }
        for (uint32_t i = 100000; head; ) {
            struct node *n = head;
            i--;
            if (n->data[n->size - 1] != (unsigned char)i)
                corrupt("list");
            head = n->next;
            sum += n->size;
            free(n);
        }
        for (int i = 0; i < 20000; i++) {
            size_t target = 64 + next() % 961, len = 0;
            char *s = NULL;
            while (len < target) {
                size_t piece = 8 + next() % 25;
                char *t = realloc(s, len + piece + 1);
                if (!t) {
                    fprintf(stderr, "churn: out of memory\n");
                    return 1;
                }
                s = t;
                memset(s + len, 'a' + (int)(len % 26), piece);
                len += piece;
                s[len] = 0;
            }
            if (s[0] != 'a')
                corrupt("string");
            sum += len + (unsigned char)s[len / 2];
            free(s);
        }
    }
    for (size_t k = 0; k < SLOTS; k++)
        free(slots[k]);
    free(slots);
    printf("%llu\n", (unsigned long long)sum);
    return 0;
}
