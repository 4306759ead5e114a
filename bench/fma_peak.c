/* This CPU's fp32 FMA peak on one core, measured rather than computed from a nominal clock
 * (a VM rarely reports its real one): 12 independent chains of 8-lane fused multiply-adds
 * (AVX2 + FMA), enough to cover the FMA latency on two pipes; 2 FLOPs per lane.
 *
 *   gcc -O2 -mavx2 -mfma bench/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak
 *   (/tmp/fma_peak & /tmp/fma_peak; wait)      # both cores at once
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

int main(void) {
  __m256 acc[12];
  for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps(i * 0.001f);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  const long n = 400000000;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < n; i++) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; j++) acc[j] = _mm256_fmadd_ps(acc[j], m, c);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
  float sum = 0;  /* keeps the chains alive */
  for (int i = 0; i < 12; i++) sum += acc[i][0];
  printf("%.1f GFLOP/s on one core (%.2f s; checksum %f)\n", n * 12.0 * 16 / s / 1e9, s, sum);
  return 0;
}
