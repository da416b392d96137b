/* comm: see include/comm.h. */
#include "comm.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const role_names[ROLE_COUNT] = {"coord", "judge", "reward", "policy"};

const char *comm_role_name(comm_role r) {
    return r >= 0 && r < ROLE_COUNT ? role_names[r] : "?";
}

void comm_sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

int comm_setup(comm_ctx *c, int n_judge, int n_reward, int n_policy, rl_err *e) {
    memset(c, 0, sizeof *c);
    c->role_comm = MPI_COMM_NULL;
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    int want = 1 + n_judge + n_reward + n_policy;
    if (c->size != want)
        return err_set(e, ERR_INPUT,
                       "the deck asks for %d ranks (1 coordinator + %d judge + %d reward + %d "
                       "policy) but mpirun started %d; run `mpirun -np %d ...` or change 'ranks'",
                       want, n_judge, n_reward, n_policy, c->size, want);
    c->count[ROLE_COORD] = 1, c->count[ROLE_JUDGE] = n_judge;
    c->count[ROLE_REWARD] = n_reward, c->count[ROLE_POLICY] = n_policy;
    c->first[ROLE_COORD] = 0;
    for (int r = 1; r < ROLE_COUNT; r++) c->first[r] = c->first[r - 1] + c->count[r - 1];
    for (int r = 0; r < ROLE_COUNT; r++)
        if (c->rank >= c->first[r] && c->rank < c->first[r] + c->count[r]) c->role = (comm_role)r;
    if (MPI_Comm_split(MPI_COMM_WORLD, (int)c->role, c->rank, &c->role_comm) != MPI_SUCCESS)
        return err_set(e, ERR_MPI, "MPI_Comm_split by role failed");
    MPI_Comm_rank(c->role_comm, &c->role_rank);
    MPI_Comm_size(c->role_comm, &c->role_size);
    return ERR_OK;
}

void comm_teardown(comm_ctx *c) {
    if (c->role_comm != MPI_COMM_NULL) MPI_Comm_free(&c->role_comm);
    c->role_comm = MPI_COMM_NULL;
}

/* Poll, then sleep with a growing interval: quick answers to quick messages, and a core left
 * alone while a long wait lasts. */
#define WAIT_MIN_US 20
#define WAIT_MAX_US 2000

int comm_wait(MPI_Request *req, MPI_Status *status) {
    long sleep_us = WAIT_MIN_US;
    for (;;) {
        int done = 0;
        int rc = MPI_Test(req, &done, status ? status : MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return ERR_MPI;
        if (done) return ERR_OK;
        comm_sleep_us(sleep_us);
        if (sleep_us < WAIT_MAX_US)
            sleep_us = sleep_us * 2 > WAIT_MAX_US ? WAIT_MAX_US : sleep_us * 2;
    }
}

int comm_waitany(int n, MPI_Request *reqs, int *index, MPI_Status *status) {
    long sleep_us = WAIT_MIN_US;
    for (;;) {
        int done = 0;
        int rc = MPI_Testany(n, reqs, index, &done, status ? status : MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return ERR_MPI;
        if (done) return ERR_OK;
        comm_sleep_us(sleep_us);
        if (sleep_us < WAIT_MAX_US)
            sleep_us = sleep_us * 2 > WAIT_MAX_US ? WAIT_MAX_US : sleep_us * 2;
    }
}

int comm_send(const void *buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm) {
    MPI_Request req;
    if (MPI_Isend(buf, count, type, dest, tag, comm, &req) != MPI_SUCCESS) return ERR_MPI;
    return comm_wait(&req, NULL);
}

int comm_recv(void *buf, int count, MPI_Datatype type, int src, int tag, MPI_Comm comm,
              MPI_Status *status) {
    MPI_Request req;
    if (MPI_Irecv(buf, count, type, src, tag, comm, &req) != MPI_SUCCESS) return ERR_MPI;
    return comm_wait(&req, status);
}

int comm_recv_alloc(void **buf, int *count, MPI_Datatype type, int src, int tag, MPI_Comm comm,
                    MPI_Status *status) {
    MPI_Status st;
    long sleep_us = WAIT_MIN_US;
    for (;;) {
        int flag = 0;
        if (MPI_Iprobe(src, tag, comm, &flag, &st) != MPI_SUCCESS) return ERR_MPI;
        if (flag) break;
        comm_sleep_us(sleep_us);
        if (sleep_us < WAIT_MAX_US)
            sleep_us = sleep_us * 2 > WAIT_MAX_US ? WAIT_MAX_US : sleep_us * 2;
    }
    int n = 0, tsize = 0;
    MPI_Get_count(&st, type, &n);
    MPI_Type_size(type, &tsize);
    *buf = xmalloc((size_t)(n > 0 ? n : 1) * (size_t)(tsize > 0 ? tsize : 1));
    *count = n;
    /* receive exactly the probed message */
    return comm_recv(*buf, n, type, st.MPI_SOURCE, st.MPI_TAG, comm, status);
}

int comm_barrier(MPI_Comm comm) {
    MPI_Request req;
    if (MPI_Ibarrier(comm, &req) != MPI_SUCCESS) return ERR_MPI;
    return comm_wait(&req, NULL);
}

int comm_bcast(void *buf, int count, MPI_Datatype type, int root, MPI_Comm comm) {
    MPI_Request req;
    if (MPI_Ibcast(buf, count, type, root, comm, &req) != MPI_SUCCESS) return ERR_MPI;
    return comm_wait(&req, NULL);
}

static int allreduce_chunked(void *buf, size_t n, size_t elem, MPI_Datatype type, MPI_Op op,
                             MPI_Comm comm, size_t chunk) {
    char *p = buf;
    while (n > 0) {
        int cnt = (int)(n < chunk ? n : chunk);
        MPI_Request req;
        if (MPI_Iallreduce(MPI_IN_PLACE, p, cnt, type, op, comm, &req) != MPI_SUCCESS)
            return ERR_MPI;
        int rc = comm_wait(&req, NULL);
        if (rc) return rc;
        p += (size_t)cnt * elem;
        n -= (size_t)cnt;
    }
    return ERR_OK;
}

/* the largest count one MPI call takes here, well inside int */
#define CHUNK_MAX ((size_t)INT_MAX / 2)

int comm_allreduce_sum_f32_chunked(float *buf, size_t n, size_t chunk, MPI_Comm comm) {
    return allreduce_chunked(buf, n, sizeof(float), MPI_FLOAT, MPI_SUM, comm,
                             chunk && chunk < CHUNK_MAX ? chunk : CHUNK_MAX);
}

int comm_allreduce_sum_f32(float *buf, size_t n, MPI_Comm comm) {
    return comm_allreduce_sum_f32_chunked(buf, n, CHUNK_MAX, comm);
}

int comm_allreduce_sum_f64(double *buf, size_t n, MPI_Comm comm) {
    return allreduce_chunked(buf, n, sizeof(double), MPI_DOUBLE, MPI_SUM, comm, CHUNK_MAX);
}

int comm_allreduce_max_int(int *value, MPI_Comm comm) {
    return allreduce_chunked(value, 1, sizeof(int), MPI_INT, MPI_MAX, comm, CHUNK_MAX);
}
