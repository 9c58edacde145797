/* The baseline for examples/bench_allreduce.rs: MPI_Allreduce (sum) of
 * float32 buffers of 1-64 MiB, straight from C, timed the same way
 * (warm-up, then the median of REPS calls after a barrier each).
 *
 *   mpicc -O2 -o /tmp/allreduce bench/allreduce.c
 *   mpirun -n 2 --bind-to none /tmp/allreduce
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#define REPS 20

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  for (int mib = 1; mib <= 64; mib *= 2) {
    size_t n = (size_t)mib * 1024 * 1024 / sizeof(float);
    float *in = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) in[i] = (float)(i % 97);
    double t[REPS];
    MPI_Allreduce(in, out, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int r = 0; r < REPS; r++) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = MPI_Wtime();
      MPI_Allreduce(in, out, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      t[r] = MPI_Wtime() - t0;
    }
    qsort(t, REPS, sizeof(double), cmp);
    double med = t[REPS / 2];
    double bytes = (double)n * sizeof(float);
    if (rank == 0)
      printf("{\"impl\":\"c\",\"ranks\":%d,\"mib\":%d,\"median_ms\":%.3f,\"algbw_gbps\":%.3f,\"busbw_gbps\":%.3f}\n",
             size, mib, med * 1e3, bytes / med / 1e9,
             bytes / med / 1e9 * 2.0 * (size - 1) / size);
    free(in);
    free(out);
  }
  MPI_Finalize();
  return 0;
}
