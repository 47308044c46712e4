/*-------------------------------------------------------------------------
 *
 * registry.h
 *		The databases and workers in shared memory (shared.h), as the
 *		workers, the SQL functions and the hooks of other backends use them.
 *		The launcher's own decisions are in launcher.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_REGISTRY_H
#define SU_REGISTRY_H

#include "shared.h"

/*
 * The worker, at start: takes the slot the launcher reserved for it
 * (false if it is no longer its own), publishes its latch, and withdraws
 * from the slot and its database's partitions at exit.
 */
extern bool su_registry_attach(int slot, Oid dboid);

/* The worker's database's slot. */
extern SuDbSlot *su_registry_my_db(void);

/*
 * The worker: a look for the extension begins; then, what it found of its
 * database (SERVED or NO_EXTENSION: LOOK again if a CREATE EXTENSION
 * committed since the look began).
 */
extern void su_registry_looking(void);
extern void su_registry_found(SuDbState state);

/*
 * When the server became writable (the launcher's first run since the
 * shared memory was made): a lease taken before it is a dead process's.
 */
extern TimestampTz su_registry_writable_since(void);

/*
 * The worker, in a transaction: joins its database's claims, once every
 * claim under way (with the partitions as they were) has committed.
 */
extern void su_registry_join(void);

/*
 * The worker: a worker of its database left, and its share is to be
 * folded into the others' (su_registry_fold(), in a transaction of its
 * own, waits for every claim under way).
 */
extern bool su_registry_must_fold(void);
extern void su_registry_fold(void);

/*
 * The worker, in its claim's transaction: its partition of the orders
 * (*n partitions, its own *part), fixed until the transaction ends.
 */
extern void su_registry_partition(int *n, int *part);

/* The worker: does the launcher want it to leave, once its answers are in? */
extern bool su_registry_retiring(void);

/* The worker: DROPs committed in its database, a count. */
extern uint32 su_registry_ext_changes(void);

/*
 * A backend's statement needs the workers out of database dbname (DROP
 * DATABASE, ALTER DATABASE ... RENAME, CREATE DATABASE ... TEMPLATE): they
 * are asked to leave, and kept out for a while.  Only for a role that may
 * run it (the database's owner or a superuser).
 */
extern void su_registry_keep_out(const char *dbname);

/*
 * A backend's transaction created (or updated) the extension, or dropped
 * something: at commit, the launcher or the workers look again.
 */
extern void su_registry_extension_created(void);
extern void su_registry_something_dropped(void);

/*
 * A new slot for database dboid (mutex held): state LOOK, its counts at
 * zero; NULL if every slot is taken.
 */
extern SuDbSlot *su_registry_new_db(Oid dboid, const char *name);

/* The workers of this database: how many attached, and one's pid. */
extern int	su_registry_workers_here(pid_t *pid);

#endif							/* SU_REGISTRY_H */
