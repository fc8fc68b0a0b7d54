/* mpi_pingpong.c - the link between two ranks: one-way latency (half the
 * round trip of an 8-byte message) and bandwidth (BYTES each way), the two
 * numbers README's scaling model takes. Run: mpirun -np 2 ./mpi_pingpong BYTES
 * Prints "latency_us BANDWIDTH_GBps". */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static double round_trips(char *buffer, int bytes, int count, int rank) {
  MPI_Barrier(MPI_COMM_WORLD);
  double start = MPI_Wtime();
  for (int i = 0; i < count; ++i) {
    if (rank == 0) {
      MPI_Send(buffer, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
      MPI_Recv(buffer, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
      MPI_Recv(buffer, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(buffer, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
    }
  }
  return (MPI_Wtime() - start) / count;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int bytes = argc > 1 ? atoi(argv[1]) : 1 << 20;
  char *buffer = calloc((size_t)bytes + 8, 1);
  round_trips(buffer, 8, 1000, rank); /* warm up */
  double small = round_trips(buffer, 8, 10000, rank);
  round_trips(buffer, bytes, 5, rank);
  double large = round_trips(buffer, bytes, 50, rank);
  if (rank == 0)
    printf("%.3f %.3f\n", small / 2 * 1e6, 2.0 * bytes / large * 1e-9);
  free(buffer);
  MPI_Finalize();
  return 0;
}
