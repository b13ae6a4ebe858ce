/* A second thread for one operation that runs alone.
 *
 * A cache lookup waits for its prompt's embedding and then for the search
 * of its partition, and on a quiet server the other core sits idle
 * meanwhile. An sc_pair is one helper thread that takes half of the work
 * of an operation while it is the only one in flight: half of each dense
 * product's column panels of a forward pass (embed/use_gemm.c), half of
 * the lists an ANN search probes or of the rows of a big exact scan
 * (index/index.c). With two or more
 * operations in flight every one runs on its own thread as before
 * (parallelism across requests, no oversubscription); the embedder and the
 * index share one pair (sc_pair_shared), so an embedding and a search on
 * two workers do not both split. Each half is computed by the same code
 * from the same inputs whichever thread runs it.
 *
 * Protocol: sc_pair_begin() before an operation and sc_pair_end() after
 * it, from every operation (they count the operations in flight); begin
 * returns 1 to the one that may split, and wakes the helper, which then
 * spins for tasks until end (or until a second operation starts).
 * sc_pair_run() posts half a task to the helper, runs the other half, and
 * runs the helper's half too when the helper has not taken it by then
 * (asleep, descheduled): a split never waits on a thread that is not
 * running. SC_EMBED_PAIR=0 in the environment turns it off. */
#ifndef SC_PAIR_H
#define SC_PAIR_H

typedef struct sc_pair sc_pair;

/* Starts the helper (asleep). NULL when threads cannot be made: every
 * call below then takes NULL and runs single-threaded. */
sc_pair *sc_pair_create(void);
/* Stops and joins the helper. No forward may be in flight. */
void sc_pair_destroy(sc_pair *p);
/* The process's pair, made on first use (sc_pair_create: NULL with
 * SC_EMBED_PAIR=0 or one usable CPU) and never destroyed. */
sc_pair *sc_pair_shared(void);

/* 1 when this forward may split (it is the only one in flight), 0 when it
 * runs alone; either way pair it with sc_pair_end(p, that value). */
int sc_pair_begin(sc_pair *p);
void sc_pair_end(sc_pair *p, int owner);

/* Marks the calling thread's operations as background work (on != 0)
 * until called again with 0: they still count as in flight, so a request's
 * operation beside one does not split, but begin never returns 1 to them,
 * so they keep to one core and leave the other to requests (the proxy's
 * write-back embedding a prompt after the answer went out). */
void sc_pair_background(int on);

/* For the forward that begin returned 1 to: 1 while it is still the only
 * one in flight (worth splitting the next product). */
int sc_pair_alone(const sc_pair *p);

/* Runs fn(arg, 0) here and fn(arg, 1) on the helper, or both here when the
 * helper does not take its half in time; returns when both have run. Only
 * the forward that begin returned 1 to may call it. */
void sc_pair_run(sc_pair *p, void (*fn)(void *arg, int half), void *arg);

/* Tests: how many halves the helper ran. */
unsigned long sc_pair_helped(const sc_pair *p);

#endif
