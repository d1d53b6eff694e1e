/* In place against out of place, with and without software prefetch, outside XLA.

   The results README's sixteenth set found that on its 2-vCPU machine a jitted prox
   written in place (input donated, as in an optimizer step) ran about twice as slowly
   as the same program writing a separate, already-mapped buffer, while x * c ran
   faster in place. XLA CPU emits no prefetch instructions, so this probe repeats the
   two layouts in plain C, with and without them, to tell the machine's behaviour from
   the code XLA generates.

   Each loop reads n floats and writes n floats. The "compute" loop costs about what the
   l1/2 prox costs per element (a square root, a division and ten multiply-adds per
   vector of eight); the "copy" loop is y = x * c. Every row is the fastest of 11 passes
   over the same buffers, so the data is as warm as the machine's caches make it; the
   "in cache" column runs the loop over the first 32 KB only. In place, the compute
   loop's output is its next input: the values settle near 0.01, far from subnormals,
   which would slow the arithmetic itself.

   Build and run (x86-64 with AVX2 and FMA):
       gcc -O2 -mavx2 -mfma -o /tmp/inplace_probe benchmarks/inplace_probe.c
       taskset -c 0 /tmp/inplace_probe 16777216
*/
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* Prefetch this many floats ahead (4 KB): far enough to cover memory latency at the
   compute loop's pace. */
enum { AHEAD = 1024 };

__attribute__((noinline)) static void compute(const float *x, float *y, size_t n, int pf) {
  const __m256 c = _mm256_set1_ps(0.999f), d = _mm256_set1_ps(1e-3f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (size_t i = 0; i < n; i += 8) {
    if (pf && (i & 15) == 0) _mm_prefetch((const char *)(x + i + AHEAD), _MM_HINT_T0);
    __m256 v = _mm256_loadu_ps(x + i);
    __m256 s = _mm256_sqrt_ps(_mm256_andnot_ps(sign, v));
    __m256 a = _mm256_div_ps(d, _mm256_max_ps(_mm256_mul_ps(s, v), d));
#pragma GCC unroll 10
    for (int k = 0; k < 10; k++) a = _mm256_fmadd_ps(a, c, d);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(a, v));
  }
}

__attribute__((noinline)) static void copy(const float *x, float *y, size_t n, int pf) {
  const __m256 c = _mm256_set1_ps(1.25f);
  for (size_t i = 0; i < n; i += 8) {
    if (pf && (i & 15) == 0) _mm_prefetch((const char *)(x + i + AHEAD), _MM_HINT_T0);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), c));
  }
}

typedef void (*loop_fn)(const float *, float *, size_t, int);

/* Fastest of 11 passes of n elements, as n / chunk calls on the first chunk of x and y. */
static double best_ns(loop_fn f, const float *x, float *y, size_t n, int pf, size_t chunk) {
  double best = 1e30;
  for (int r = 0; r < 11; r++) {
    double t0 = now();
    for (size_t done = 0; done < n; done += chunk) f(x, y, chunk, pf);
    double t = now() - t0;
    if (t < best) best = t;
  }
  return best / n * 1e9;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? (size_t)atol(argv[1]) : (size_t)1 << 24;
  n -= n % 16;
  /* AHEAD floats of slack: the prefetches run past the end. */
  float *x = aligned_alloc(4096, (n + AHEAD) * sizeof(float));
  float *y = aligned_alloc(4096, (n + AHEAD) * sizeof(float));
  if (!x || !y) return 1;
  const char *names[] = {"compute", "copy"};
  loop_fn fns[] = {compute, copy};
  printf("n=%zu floats (%zu MB per buffer); ns per element, fastest of 11 passes\n", n,
         n * sizeof(float) >> 20);
  printf("%-8s %9s %9s %9s %9s %9s\n", "loop", "in cache", "oop", "oop+pf", "in place",
         "in pl+pf");
  for (int j = 0; j < 2; j++) {
    for (size_t i = 0; i < n + AHEAD; i++) x[i] = y[i] = 1e-3f * (float)(i % 997);
    double cache = best_ns(fns[j], x, y, n, 0, 8192);
    double oop = best_ns(fns[j], x, y, n, 0, n), oop_pf = best_ns(fns[j], x, y, n, 1, n);
    double ip = best_ns(fns[j], x, x, n, 0, n), ip_pf = best_ns(fns[j], x, x, n, 1, n);
    printf("%-8s %9.3f %9.3f %9.3f %9.3f %9.3f\n", names[j], cache, oop, oop_pf, ip, ip_pf);
  }
  free(x);
  free(y);
  return 0;
}
