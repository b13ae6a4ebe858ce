/* A second thread for one embedding that runs alone.
 *
 * A cache lookup waits for its prompt's embedding, and on a quiet server
 * the other core sits idle meanwhile. An sc_use_pair is one helper thread
 * that takes half of each dense product's column panels while exactly one
 * forward pass is in flight, so a lone prompt is embedded on two cores;
 * with two or more forwards in flight every one runs on its own thread as
 * before (parallelism across requests, no oversubscription). Each column
 * is computed by the same code from the same inputs whichever thread runs
 * it, so the vectors are bit for bit the same with or without the pair.
 *
 * Protocol: sc_use_pair_begin() before a forward pass and
 * sc_use_pair_end() after it, from every forward (they count the forwards
 * in flight); begin returns 1 to the one forward that may split, and wakes
 * the helper, which then spins for tasks until end (or until a second
 * forward starts). sc_use_pair_run() posts half a task to the helper, runs
 * the other half, and runs the helper's half too when the helper has not
 * taken it by then (asleep, descheduled): a split never waits on a thread
 * that is not running. SC_EMBED_PAIR=0 in the environment turns it off
 * when a model is loaded. */
#ifndef SC_USE_PAIR_H
#define SC_USE_PAIR_H

typedef struct sc_use_pair sc_use_pair;

/* Starts the helper (asleep). NULL when threads cannot be made: every
 * call below then takes NULL and runs single-threaded. */
sc_use_pair *sc_use_pair_create(void);
/* Stops and joins the helper. No forward may be in flight. */
void sc_use_pair_destroy(sc_use_pair *p);

/* 1 when this forward may split (it is the only one in flight), 0 when it
 * runs alone; either way pair it with sc_use_pair_end(p, that value). */
int sc_use_pair_begin(sc_use_pair *p);
void sc_use_pair_end(sc_use_pair *p, int owner);

/* For the forward that begin returned 1 to: 1 while it is still the only
 * one in flight (worth splitting the next product). */
int sc_use_pair_alone(const sc_use_pair *p);

/* Runs fn(arg, 0) here and fn(arg, 1) on the helper, or both here when the
 * helper does not take its half in time; returns when both have run. Only
 * the forward that begin returned 1 to may call it. */
void sc_use_pair_run(sc_use_pair *p, void (*fn)(void *arg, int half), void *arg);

/* Tests: how many halves the helper ran. */
unsigned long sc_use_pair_helped(const sc_use_pair *p);

#endif
