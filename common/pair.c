/* The helper thread of one lone operation (common/pair.h).
 *
 * One word, slot, carries the hand-off: (sequence << 2) | state, state
 * FREE, POSTED (a half is waiting) or TAKEN (the helper runs it). The owner
 * posts only when the slot is FREE, so the task it describes (fn, arg)
 * cannot change under a helper that took it; whoever moves the slot from
 * POSTED (the helper to TAKEN, the owner back to FREE) runs the half. The
 * helper spins while an operation that may split is open and sleeps on a
 * condition variable otherwise; `sleeping` and the fields it waits on are
 * written before they are read on the other side (sequentially consistent
 * atomics), so a wake-up cannot be lost. */
#include "common/pair.h"

#include "common/alloc.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PAUSE() _mm_pause()
#else
#define PAUSE() ((void)0)
#endif

enum { SLOT_FREE = 0, SLOT_POSTED = 1, SLOT_TAKEN = 2 };
#define SLOT(seq, st) (((uint64_t)(seq) << 2) | (uint64_t)(st))

struct sc_pair {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic uint64_t slot;
    _Atomic int inflight;        /* operations between begin and end */
    _Atomic int active;          /* the one that may split is open */
    _Atomic int sleeping;        /* the helper waits on cv */
    _Atomic int stop;
    _Atomic unsigned long helped;
    void (*fn)(void *, int);     /* the posted task, set by the owner */
    void *arg;
    uint64_t seq;                /* the owner's last sequence number */
};

static void wake(sc_pair *p)
{
    if (!atomic_load(&p->sleeping)) return;
    pthread_mutex_lock(&p->mu);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Worth spinning: a forward that may split is open and still alone. */
static int wanted(const sc_pair *p)
{
    return atomic_load(&p->active) && atomic_load(&p->inflight) == 1;
}

static void *helper_main(void *arg)
{
    sc_pair *p = arg;
    unsigned spins = 0;
    for (;;) {
        uint64_t v = atomic_load(&p->slot);
        if ((v & 3) == SLOT_POSTED) {
            if (atomic_compare_exchange_strong(&p->slot, &v, (v & ~(uint64_t)3) | SLOT_TAKEN)) {
                p->fn(p->arg, 1);
                atomic_fetch_add_explicit(&p->helped, 1, memory_order_relaxed);
                atomic_store(&p->slot, (v & ~(uint64_t)3) | SLOT_FREE);
            }
            continue;
        }
        if (atomic_load(&p->stop)) break;
        if (wanted(p)) {
            /* Between the products (attention, layer norms) the owner
             * works alone; yielding now and then lets another thread
             * that wants this CPU have it meanwhile. */
            if (++spins % 64 == 0) sched_yield();
            else PAUSE();
            continue;
        }
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->sleeping, 1);
        while (!atomic_load(&p->stop) && (atomic_load(&p->slot) & 3) != SLOT_POSTED && !wanted(p))
            pthread_cond_wait(&p->cv, &p->mu);
        atomic_store(&p->sleeping, 0);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

/* CPUs this process may run on (the helper only pays with two or more). */
static int usable_cpus(void)
{
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

sc_pair *sc_pair_create(void)
{
    const char *env = getenv("SC_EMBED_PAIR");
    if ((env && strcmp(env, "0") == 0) || usable_cpus() < 2) return NULL;
    sc_pair *p = SC_NEW(sc_pair);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->th, NULL, helper_main, p) != 0) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
        return NULL;
    }
    return p;
}

static sc_pair *shared;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

static void shared_make(void)
{
    shared = sc_pair_create();
}

sc_pair *sc_pair_shared(void)
{
    pthread_once(&shared_once, shared_make);
    return shared;
}

void sc_pair_destroy(sc_pair *p)
{
    if (!p) return;
    atomic_store(&p->stop, 1);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

static _Thread_local int background;

void sc_pair_background(int on) { background = on != 0; }

int sc_pair_begin(sc_pair *p)
{
    if (!p) return 0;
    if (atomic_fetch_add(&p->inflight, 1) != 0 || background) return 0;
    atomic_store(&p->active, 1);
    wake(p);
    return 1;
}

void sc_pair_end(sc_pair *p, int owner)
{
    if (!p) return;
    if (owner) atomic_store(&p->active, 0);
    atomic_fetch_sub(&p->inflight, 1);
}

int sc_pair_alone(const sc_pair *p)
{
    return p && atomic_load(&p->inflight) == 1;
}

void sc_pair_run(sc_pair *p, void (*fn)(void *arg, int half), void *arg)
{
    p->fn = fn;
    p->arg = arg;
    uint64_t s = ++p->seq;
    atomic_store(&p->slot, SLOT(s, SLOT_POSTED));
    wake(p);
    fn(arg, 0);
    uint64_t v = SLOT(s, SLOT_POSTED);
    if (atomic_compare_exchange_strong(&p->slot, &v, SLOT(s, SLOT_FREE))) {
        fn(arg, 1);   /* not taken: the helper is asleep or off the CPU */
        return;
    }
    /* The helper took it: wait, letting the CPU go now and then in case
     * the helper was preempted by a thread that needs this one. */
    for (unsigned spins = 1; atomic_load(&p->slot) != SLOT(s, SLOT_FREE); spins++) {
        if (spins % 256 == 0) sched_yield();
        else PAUSE();
    }
}

unsigned long sc_pair_helped(const sc_pair *p)
{
    return p ? atomic_load_explicit(&p->helped, memory_order_relaxed) : 0;
}
