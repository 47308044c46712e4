/*-------------------------------------------------------------------------
 *
 * worker.h
 *		The launcher and the upload worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_WORKER_H
#define SU_WORKER_H

/* Registers the launcher (with shared_preload_libraries). */
extern void su_register_launcher(void);

#endif							/* SU_WORKER_H */
