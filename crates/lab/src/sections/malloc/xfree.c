/* Cross-thread frees: blocks allocated by one thread and freed by another,
 * as in a pipeline or a server whose workers hand results on.
 *
 * Each round has two phases. Pipeline: 2 producers each allocate 100k
 * blocks of 16 B-1 KiB in batches of 256 and queue the batches; 2
 * consumers take them, check each block's marks and free it. Exchange:
 * 4 threads each put 50k fresh blocks into random slots of one shared
 * table of 4096, freeing whatever block they swap out, so most blocks die
 * on a thread that did not make them. Prints a checksum that is the same
 * under every allocator.
 *
 * Usage: xfree ROUNDS */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { PRODUCERS = 2, PER_PRODUCER = 100000, BATCH = 256, QUEUE = 16 };
enum { SWAPPERS = 4, PER_SWAPPER = 50000, TABLE = 4096 };

struct block {
    uint32_t size;
    uint32_t mark;
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "xfree: out of memory\n");
        exit(1);
    }
    return p;
}

static uint64_t step(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* A block of 16 B-1 KiB whose size and mark are written at its start and
 * its end. */
static struct block *make(uint64_t r)
{
    uint32_t size = 16 + (uint32_t)(r >> 40) % 1009;
    struct block *b = xmalloc(size);
    b->size = size;
    b->mark = (uint32_t)r;
    ((unsigned char *)b)[size - 1] = (unsigned char)r;
    return b;
}

/* Checks a block's marks, frees it and returns its size. */
static uint64_t unmake(struct block *b)
{
    uint32_t size = b->size;
    if (size < 16 || size > 1024 || ((unsigned char *)b)[size - 1] != (unsigned char)b->mark) {
        fprintf(stderr, "xfree: a block's marks changed\n");
        exit(1);
    }
    free(b);
    return size;
}

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct block **batches[QUEUE];
    int head, count, producers_left;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, 0};

static void *produce(void *arg)
{
    uint64_t s = 0x9E3779B97F4A7C15ull + (uintptr_t)arg;
    for (int made = 0; made < PER_PRODUCER; made += BATCH) {
        struct block **batch = xmalloc(BATCH * sizeof *batch);
        for (int i = 0; i < BATCH; i++)
            batch[i] = make(step(&s));
        pthread_mutex_lock(&q.lock);
        while (q.count == QUEUE)
            pthread_cond_wait(&q.changed, &q.lock);
        q.batches[(q.head + q.count++) % QUEUE] = batch;
        pthread_cond_broadcast(&q.changed);
        pthread_mutex_unlock(&q.lock);
    }
    pthread_mutex_lock(&q.lock);
    q.producers_left--;
    pthread_cond_broadcast(&q.changed);
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

static void *consume(void *arg)
{
    uint64_t *sum = arg;
    for (;;) {
        pthread_mutex_lock(&q.lock);
        while (q.count == 0 && q.producers_left > 0)
            pthread_cond_wait(&q.changed, &q.lock);
        if (q.count == 0) {
            pthread_mutex_unlock(&q.lock);
            return NULL;
        }
        struct block **batch = q.batches[q.head];
        q.head = (q.head + 1) % QUEUE;
        q.count--;
        pthread_cond_broadcast(&q.changed);
        pthread_mutex_unlock(&q.lock);
        for (int i = 0; i < BATCH; i++)
            *sum += unmake(batch[i]);
        free(batch);
    }
}

static struct block *table[TABLE];

static void *swap(void *arg)
{
    uint64_t *sum = arg;
    uint64_t s = 0x2545F4914F6CDD1Dull + *sum;
    *sum = 0;
    for (int i = 0; i < PER_SWAPPER; i++) {
        uint64_t r = step(&s);
        struct block *old = __atomic_exchange_n(&table[(r >> 3) % TABLE], make(r), __ATOMIC_ACQ_REL);
        if (old)
            *sum += unmake(old);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 1;
    uint64_t total = 0;
    for (long r = 0; r < rounds; r++) {
        pthread_t threads[SWAPPERS];
        uint64_t sums[SWAPPERS] = {0};
        q.producers_left = PRODUCERS;
        for (int i = 0; i < PRODUCERS; i++)
            pthread_create(&threads[i], NULL, produce, (void *)(uintptr_t)(i + 1));
        for (int i = 0; i < 2; i++)
            pthread_create(&threads[PRODUCERS + i], NULL, consume, &sums[i]);
        for (int i = 0; i < PRODUCERS + 2; i++)
            pthread_join(threads[i], NULL);
        for (int i = 0; i < SWAPPERS; i++) {
            total += sums[i];
            sums[i] = (uint64_t)(r * SWAPPERS + i + 1);
        }
        for (int i = 0; i < SWAPPERS; i++)
            pthread_create(&threads[i], NULL, swap, &sums[i]);
        for (int i = 0; i < SWAPPERS; i++)
            pthread_join(threads[i], NULL);
        for (int i = 0; i < SWAPPERS; i++)
            total += sums[i];
    }
    for (int i = 0; i < TABLE; i++)
        if (table[i])
            total += unmake(table[i]);
    printf("%llu\n", (unsigned long long)total);
    return 0;
}
