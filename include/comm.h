/* comm: roles by rank, one communicator per role, message tags, and waits that sleep.
 *
 * World rank 0 is the coordinator; then come the judge ranks, the reward ranks and the policy
 * ranks, in the counts the deck gives. MPI_Comm_split gives every role its own communicator;
 * collectives of a role (gradient allreduce) run there, never on MPI_COMM_WORLD.
 *
 * Open MPI busy-polls inside blocking calls. Every wait here goes through comm_wait: MPI_Test
 * plus a sleep that grows from 20 us to 2 ms, so a rank with nothing to do costs well under 5%
 * of a core and answers within 2 ms. */
#ifndef RLAIF_COMM_H
#define RLAIF_COMM_H

#include <mpi.h>
#include <stddef.h>

#include "err.h"

typedef enum comm_role {
    ROLE_COORD = 0,
    ROLE_JUDGE,
    ROLE_REWARD,
    ROLE_POLICY,
    ROLE_COUNT
} comm_role;

/* Message tags between roles. */
enum comm_tag {
    TAG_CONTROL = 100, /* coordinator -> all: stage start/stop commands */
    TAG_WORK_REQ,      /* worker -> coordinator: ready for work */
    TAG_WORK,          /* coordinator -> worker: a batch of work */
    TAG_RESULT,        /* worker -> coordinator: results of a batch */
    TAG_SCORE_REQ,     /* policy -> reward: sequences to score */
    TAG_SCORE,         /* reward -> policy: scores */
    TAG_CKPT,          /* checkpoint coordination */
    TAG_STATUS,        /* worker -> coordinator: stage done / failed, with a message */
    TAG_DATA           /* bulk data between peers */
};

typedef struct comm_ctx {
    int rank, size; /* in MPI_COMM_WORLD */
    comm_role role;
    int role_rank, role_size;
    MPI_Comm role_comm;                       /* the ranks of this role */
    int first[ROLE_COUNT], count[ROLE_COUNT]; /* world ranks of each role: first..first+count-1 */
} comm_ctx;

const char *comm_role_name(comm_role r);

/* Splits MPI_COMM_WORLD by role. Fails (ERR_INPUT, same verdict on every rank, no
 * communication needed) when the world size is not 1 + judge + reward + policy. */
int comm_setup(comm_ctx *c, int n_judge, int n_reward, int n_policy, rl_err *e);
void comm_teardown(comm_ctx *c);

/* World rank of the i-th rank of a role. */
static inline int comm_world_rank(const comm_ctx *c, comm_role r, int i) {
    return c->first[r] + i;
}

/* Waits for a request without spinning. */
int comm_wait(MPI_Request *req, MPI_Status *status);
/* Waits for any of n requests; returns its index in *index. */
int comm_waitany(int n, MPI_Request *reqs, int *index, MPI_Status *status);

/* Blocking-style point-to-point and collectives built on comm_wait. */
int comm_send(const void *buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm);
int comm_recv(void *buf, int count, MPI_Datatype type, int src, int tag, MPI_Comm comm,
              MPI_Status *status);
/* Receives a message of unknown length (probe, allocate, receive); *buf is malloc'd. */
int comm_recv_alloc(void **buf, int *count, MPI_Datatype type, int src, int tag, MPI_Comm comm,
                    MPI_Status *status);
int comm_barrier(MPI_Comm comm);
int comm_bcast(void *buf, int count, MPI_Datatype type, int root, MPI_Comm comm);
/* In-place sum over comm of n floats (n may exceed INT_MAX: split into chunks). */
int comm_allreduce_sum_f32(float *buf, size_t n, MPI_Comm comm);
/* The same with an explicit chunk size (elements per MPI call), for tests of the chunking. */
int comm_allreduce_sum_f32_chunked(float *buf, size_t n, size_t chunk, MPI_Comm comm);
int comm_allreduce_sum_f64(double *buf, size_t n, MPI_Comm comm);
int comm_allreduce_max_int(int *value, MPI_Comm comm);

/* Sleeps for the given microseconds. */
void comm_sleep_us(long us);

#endif
