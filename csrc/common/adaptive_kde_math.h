// Per-channel math of the adaptive_kde op (Shimazaki & Shinomoto's locally
// adaptive kernel density estimate, "ssvkernel", J. Comput. Neurosci. 2010,
// Gauss window), shared by the OpenMP kernel and a CUDA kernel. Every function
// is FC_HD (__host__ __device__ inline), takes raw pointers and sizes, and
// allocates nothing: the caller owns the scratch. double precision only (the
// definition, fastcam/kernels/reference/adaptive_kde.py, is float64, and the estimate
// makes discrete choices - argmins, golden-section comparisons - on its values).
//
// One channel, in the order a driver calls these (see adaptive_kde_channel at the end):
//   L = adaptive_kde_grid_size(x)                     internal grid size, 0 = no estimate
//   AdaptiveKdeTables for L (adaptive_kde_fill_tables, once per L; shared by the channels)
//   adaptive_kde_histogram -> y (L)
//   adaptive_kde_local_bandwidths -> gsr (L x M) = w*_i(t_k) / W_i, and its row max/min
//   golden section over gamma (AdaptiveKdeGolden), each step one adaptive_kde_cost
//   adaptive_kde_interp onto linspace(0, 1, Z) (when L != Z), adaptive_kde_count_peaks
#pragma once
#include <cmath>
#include <cstdint>

#include "host_device.h"

// Vectorisation hint for the host compiler (the OpenMP build); nothing on CUDA.
#if defined(_OPENMP) && !defined(__CUDA_ARCH__)
#define FC_ADAPTIVE_KDE_SIMD _Pragma("omp simd")
#else
#define FC_ADAPTIVE_KDE_SIMD
#endif

namespace fastcam {

// ssvkernel's fixed choices (the op's definition): M candidate bandwidths,
// golden-section iteration cap and tolerance, cap on the coarse grid.
constexpr int kAdaptiveKdeM = 10;
constexpr int kAdaptiveKdeMaxIter = 30;
constexpr double kAdaptiveKdeTol = 1e-5;
constexpr int kAdaptiveKdeMaxGrid = 1000;

// ---------------------------------------------------------------------------
// exp for x <= 0 that compilers vectorise (std::exp is a library call that
// GCC does not vectorise without -ffast-math; GCC needs -fno-trapping-math to
// if-convert the clamp below, which the OpenMP kernel's file sets). Range
// reduction x = n ln2 + r, |r| <= ln2/2, degree-13 Taylor polynomial (truncation error
// < 1e-17), scaling by 2^n in two halves so that results in the subnormal
// range are right too; exp(x) = 0 below -745.2. Within a few ulp of std::exp.
// On the GPU it is the device's exp.
// ---------------------------------------------------------------------------
FC_HD double adaptive_kde_bits_to_double(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(u));
#else
  return __builtin_bit_cast(double, u);  // (memcpy here stops GCC vectorising)
#endif
}
FC_HD uint64_t adaptive_kde_double_to_bits(double d) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(d));
#else
  return __builtin_bit_cast(uint64_t, d);
#endif
}

FC_HD double adaptive_kde_exp(double x) {
#if defined(__CUDA_ARCH__)
  return exp(x);
#else
  constexpr double kLog2e = 1.4426950408889634;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // ln2 = Hi + Lo, Hi has
  constexpr double kLn2Lo = 1.90821492927058770002e-10;  // 32 trailing zero bits
  constexpr double kShift = 6755399441055744.0;          // 1.5 * 2^52
  x = x > -745.2 ? x : -745.2;  // a select, not fmax (whose NaN rule blocks vectorising)
  const double kd = x * kLog2e + kShift;   // round(x / ln2) in the low mantissa bits
  const double n = kd - kShift;
  const double r = (x - n * kLn2Hi) - n * kLn2Lo;
  double p = 1.0 / 6227020800.0;           // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // 2^n = 2^n1 * 2^n2 with n1 = trunc(n/2), both halves normal for n >= -1075.
  const double n1 = trunc(n * 0.5);
  const double n2 = n - n1;
  const uint64_t shift_bits = adaptive_kde_double_to_bits(kShift);
  const uint64_t e1 = (adaptive_kde_double_to_bits(n1 + (1023.0 + kShift)) - shift_bits) << 52;
  const uint64_t e2 = (adaptive_kde_double_to_bits(n2 + (1023.0 + kShift)) - shift_bits) << 52;
  return p * adaptive_kde_bits_to_double(e1) * adaptive_kde_bits_to_double(e2);
#endif
}

// ---------------------------------------------------------------------------
// Grids and candidate bandwidths
// ---------------------------------------------------------------------------
// numpy.linspace(0, 1, n)[i] bit for bit: i * (1/(n-1)), the last point 1.
FC_HD double adaptive_kde_linspace01(int i, int n) {
  return i == n - 1 ? 1.0 : double(i) * (1.0 / double(n - 1));
}

// min(diff(linspace(0, 1, n))): ssvkernel's dt for a grid of n points.
FC_HD double adaptive_kde_grid_step(int n) {
  double dt = INFINITY, prev = adaptive_kde_linspace01(0, n);
  for (int i = 1; i < n; ++i) {
    const double cur = adaptive_kde_linspace01(i, n);
    dt = fmin(dt, cur - prev);
    prev = cur;
  }
  return dt;
}

FC_HD double adaptive_kde_logexp(double u) { return u < 1e2 ? log(1.0 + exp(u)) : u; }
FC_HD double adaptive_kde_ilogexp(double u) { return u < 1e2 ? log(exp(u) - 1.0) : u; }

// W_j = logexp(linspace(ilogexp(5 dt), ilogexp(T), M))[j] (numpy's linspace).
FC_HD double adaptive_kde_bandwidth(int j, int M, double dt, double T) {
  const double a = adaptive_kde_ilogexp(5.0 * dt), b = adaptive_kde_ilogexp(T);
  if (M == 1) return adaptive_kde_logexp(a);
  const double u = j == M - 1 ? b : double(j) * ((b - a) / double(M - 1)) + a;
  return adaptive_kde_logexp(u);
}

// ssvkernel's FFT length for a kernel of w grid steps on L points: 2^ceil(log2(L + 3w)).
FC_HD int adaptive_kde_fft_size(int L, double w) {
  return int(exp2(ceil(log2(double(L) + 3.0 * w))));
}

// kappa[r]: ssvkernel's FFT smoothing (zero padding to n points, multiplication
// by exp(-(2 pi f w)^2 / 2)) is the circular convolution with this periodised
// Gauss kernel of w grid steps. For n <= 64 it is computed exactly, as the
// inverse DFT of the sampled spectrum; otherwise (then w >= 5) as the sum of
// the normal density's periodic images sum_p g_w(r + p n), equal to rounding.
FC_HD double adaptive_kde_kernel_entry(int r, double w, int n) {
  const double kPi = 3.14159265358979323846;
  if (n <= 64) {
    double s = 0.0;
    for (int k = 0; k <= n / 2; ++k) {
      const double f = double(k) / double(n);
      const double K = exp(-0.5 * (w * 2.0 * kPi * f) * (w * 2.0 * kPi * f));
      const double wt = (k == 0 || k == n / 2) ? 1.0 : 2.0;
      s += wt * K * cos(2.0 * kPi * double(k) * double(r) / double(n));
    }
    return s / double(n);
  }
  const int P = int(40.0 * w / double(n)) + 1;
  double s = 0.0;
  for (int p = -P; p <= P; ++p) {
    const double u = (double(r) + double(p) * double(n)) / w;
    s += exp(-0.5 * u * u);
  }
  return s / (sqrt(2.0 * kPi) * w);
}

// Everything that depends only on the internal grid size L (shared by all the
// channels with that grid): dt, the M bandwidths, their smoothing kernels and
// their Gauss windows on the grid, both stored two-sided,
//   ext[i*(2L-1) + (L-1) + d]  = kappa_i[|d|],
//   gext[i*(2L-1) + (L-1) + d] = G(t_|d|; W_i) = exp(-t_|d|^2 / (2 W_i^2)) / W_i,
// so that the row "kappa_i[|k - m|] over k" is the contiguous ext_i + (L-1-m).
struct AdaptiveKdeTables {
  int L;
  double dt;
  const double* W;     // (M)
  const double* ext;   // (M, 2L-1)
  const double* gext;  // (M, 2L-1)
  double Wmin, Wmax;
};

// Fills W (M), ext and gext (M*(2L-1) each) for the grid of L points (T = 1);
// returns dt.
FC_HD double adaptive_kde_fill_tables(int L, int M, double* W, double* ext, double* gext) {
  const double dt = adaptive_kde_grid_step(L);
  for (int i = 0; i < M; ++i) {
    W[i] = adaptive_kde_bandwidth(i, M, dt, 1.0);
    const double w = W[i] / dt;
    const int n = adaptive_kde_fft_size(L, w);
    double* e = ext + int64_t(i) * (2 * L - 1) + (L - 1);
    double* ge = gext + int64_t(i) * (2 * L - 1) + (L - 1);
    for (int r = 0; r < L; ++r) {
      e[r] = e[-r] = adaptive_kde_kernel_entry(r, w, n);
      const double d = adaptive_kde_linspace01(r, L);
      ge[r] = ge[-r] = exp(d * d * (-0.5 / (W[i] * W[i]))) / W[i];
    }
  }
  return dt;
}

// ---------------------------------------------------------------------------
// Step 1: the internal grid. Samples in [0, 1] only; span T = 1; ds = smallest
// non-zero gap between in-range samples. If ds > min diff(linspace(0,1,Z)) the
// grid is linspace(0, 1, min(ceil(1/ds), 1000)), else Z points. Returns 0 when
// there is no estimate (no sample in range, all in-range samples equal, or a
// one-point grid). O(S^2) pairwise gaps: no sort, no scratch.
// ---------------------------------------------------------------------------
FC_HD int adaptive_kde_grid_size(const double* x, int S, int Z, int max_grid) {
  int n_in = 0;
  double ds = INFINITY;
  for (int i = 0; i < S; ++i) {
    const double xi = x[i];
    if (!(xi >= 0.0 && xi <= 1.0)) continue;
    ++n_in;
    for (int j = i + 1; j < S; ++j) {
      const double xj = x[j];
      if (!(xj >= 0.0 && xj <= 1.0) || xj == xi) continue;
      ds = fmin(ds, xj > xi ? xj - xi : xi - xj);
    }
  }
  if (n_in == 0 || !(ds < INFINITY) || Z < 2) return 0;
  int L = Z;
  if (ds > adaptive_kde_grid_step(Z)) {
    const double c = ceil(1.0 / ds);
    L = c < double(max_grid) ? int(c) : max_grid;
  }
  return L >= 2 ? L : 0;
}

// ---------------------------------------------------------------------------
// Step 2: histogram on the edges t_m - dt/2 (numpy.histogram's searchsorted
// semantics): the bin of v in [0, 1] is #{m in 1..L-1 : t_m - dt/2 <= v}.
// y[m] = count / dt. Returns N = sum_m y[m] dt.
// ---------------------------------------------------------------------------
FC_HD int adaptive_kde_hist_bin(double v, int L, double dt) {
  int lo = 0, hi = L - 1;  // answer in [lo, hi]
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (adaptive_kde_linspace01(mid, L) - 0.5 * dt <= v) lo = mid; else hi = mid - 1;
  }
  return lo;
}

FC_HD double adaptive_kde_histogram(const double* x, int S, int L, double dt, double* y) {
  for (int m = 0; m < L; ++m) y[m] = 0.0;
  for (int i = 0; i < S; ++i)
    if (x[i] >= 0.0 && x[i] <= 1.0) y[adaptive_kde_hist_bin(x[i], L, dt)] += 1.0;
  double N = 0.0;
  for (int m = 0; m < L; ++m) {
    y[m] = y[m] / dt;
    N += y[m] * dt;
  }
  return N;
}

// ---------------------------------------------------------------------------
// Steps 3-4: the M local risk integrands and their local smoothing.
//   yh_j = kappa_j (*) y,  c_j = yh_j^2 - 2 yh_j y + 2/sqrt(2 pi)/W_j y
//   C_ij = kappa_i (*) c_j,  w*_i(t_k) = W[argmin_j C_ij(t_k)] (first on ties)
// Output gsr[k*M + i] = w*_i(t_k) / W_i, gmax[k] / gmin[k] its max / min over i.
// Scratch c and acc: M*L each. O(M^2 L^2) multiply-adds.
// ---------------------------------------------------------------------------
FC_HD void adaptive_kde_local_bandwidths(const double* y, const AdaptiveKdeTables& tb, int M,
                                         double* c, double* acc, double* gsr, double* gmax,
                                         double* gmin) {
  const int L = tb.L;
  const int64_t E = 2 * L - 1;
  const double kC = 2.0 / sqrt(2.0 * 3.14159265358979323846);
  for (int j = 0; j < M; ++j) {
    double* cj = c + int64_t(j) * L;
    for (int k = 0; k < L; ++k) cj[k] = 0.0;
    for (int m = 0; m < L; ++m) {
      const double ym = y[m];
      if (ym == 0.0) continue;
      const double* row = tb.ext + j * E + (L - 1 - m);
      FC_ADAPTIVE_KDE_SIMD
      for (int k = 0; k < L; ++k) cj[k] += ym * row[k];
    }
    const double cw = kC / tb.W[j];
    FC_ADAPTIVE_KDE_SIMD
    for (int k = 0; k < L; ++k) {
      const double yh = cj[k];
      cj[k] = yh * yh - 2.0 * yh * y[k] + cw * y[k];
    }
  }
  // C_ij(t_k) for blocks of KB grid points, kept in registers while m runs:
  // one load of the kernel row per multiply-add and no stores in the inner loop.
  constexpr int KB = 32;
  for (int i = 0; i < M; ++i) {
    const double* ki = tb.ext + i * E + (L - 1);
    for (int k0 = 0; k0 < L; k0 += KB) {
      const int nk = L - k0 < KB ? L - k0 : KB;
      for (int j = 0; j < M; ++j) {
        const double* cj = c + int64_t(j) * L;
        double a[KB];
        for (int q = 0; q < KB; ++q) a[q] = 0.0;
        if (nk == KB) {
          for (int m = 0; m < L; ++m) {
            const double cm = cj[m];
            const double* row = ki - m + k0;
            FC_ADAPTIVE_KDE_SIMD
            for (int q = 0; q < KB; ++q) a[q] += cm * row[q];
          }
        } else {
          for (int m = 0; m < L; ++m) {
            const double cm = cj[m];
            const double* row = ki - m + k0;
            for (int q = 0; q < nk; ++q) a[q] += cm * row[q];
          }
        }
        double* aj = acc + int64_t(j) * L + k0;
        for (int q = 0; q < nk; ++q) aj[q] = a[q];
      }
    }
    for (int k = 0; k < L; ++k) {
      int best = 0;
      double bv = acc[k];
      for (int j = 1; j < M; ++j) {
        const double v = acc[int64_t(j) * L + k];
        if (v < bv) { bv = v; best = j; }
      }
      gsr[int64_t(k) * M + i] = tb.W[best] / tb.W[i];
    }
  }
  for (int k = 0; k < L; ++k) {
    double hi = gsr[int64_t(k) * M], lo = hi;
    for (int i = 1; i < M; ++i) {
      hi = fmax(hi, gsr[int64_t(k) * M + i]);
      lo = fmin(lo, gsr[int64_t(k) * M + i]);
    }
    gmax[k] = hi;
    gmin[k] = lo;
  }
}

// The variable bandwidth at one grid point for stiffness g: min W if g > max_i
// r_i, max W if g < min_i r_i, else g * W_{i*}, i* the largest i with r_i >= g
// (r = gsr row of the point). *sel = i*, or -1 in the first two cases.
FC_HD double adaptive_kde_select_bandwidth(double g, const double* r, int M,
                                           const AdaptiveKdeTables& tb, double rmax, double rmin,
                                           int* sel) {
  *sel = -1;
  if (g > rmax) return tb.Wmin;
  if (g < rmin) return tb.Wmax;
  int last = 0;
  for (int i = 0; i < M; ++i)
    if (r[i] >= g) last = i;
  *sel = last;
  return g * tb.W[last];
}

// ---------------------------------------------------------------------------
// Step 5: the cost of stiffness g. t: the grid (L); y: histogram; N its mass.
//   w_v(t_m) = adaptive_kde_select_bandwidth(g, ...)
//   w_p(t_k) = sum_m w_v(t_m) G(t_k - t_m; w_v(t_m)/g) / sum_m G(...)   (Nadaraya-Watson)
//   yv(t_k) = sum_m y_m dt G(t_k - t_m; w_p(t_k)), scaled to sum_k yv dt = N (balloon)
//   C(g) = sum_k (yv^2 - 2 yv y + 2/sqrt(2 pi)/w_p y) dt,   G(x; s) = exp(-x^2/(2 s^2))/s
// The windows w_v/g take M + 2 values: W_i where w_v = g W_i (G from the table
// gext, equal to rounding) and min W/g, max W/g (tabulated here), so the
// Nadaraya-Watson sums need no exponential. The balloon sum runs over the
// non-empty bins only. Writes optwv, optwp, yv (L each; w1, w2: L, w3: 2(2L-1)
// scratch) and returns C(g). L * (non-empty bins) + 2L exponentials.
// ---------------------------------------------------------------------------
FC_HD double adaptive_kde_cost(double g, const double* y, double N, const double* t,
                               const double* gsr, const double* gmax, const double* gmin, int M,
                               const AdaptiveKdeTables& tb, double* optwv, double* optwp,
                               double* yv, double* w1, double* w2, double* w3) {
  const int L = tb.L;
  const int64_t E = 2 * L - 1;
  const double dt = tb.dt;
  double* num = optwp;
  double* den = w1;
  // Gauss windows of the two bandwidths that depend on g, two-sided like gext
  const double s_over = tb.Wmin / g, s_under = tb.Wmax / g;
  const double a_over = -0.5 / (s_over * s_over), a_under = -0.5 / (s_under * s_under);
  double* g_over = w3 + (L - 1);
  double* g_under = w3 + E + (L - 1);
  FC_ADAPTIVE_KDE_SIMD
  for (int r = 0; r < L; ++r) {
    const double d = adaptive_kde_linspace01(r, L);
    g_over[r] = adaptive_kde_exp(d * d * a_over) / s_over;
    g_under[r] = adaptive_kde_exp(d * d * a_under) / s_under;
  }
  for (int r = 1; r < L; ++r) {
    g_over[-r] = g_over[r];
    g_under[-r] = g_under[r];
  }
  for (int k = 0; k < L; ++k) num[k] = den[k] = 0.0;
  for (int m = 0; m < L; ++m) {
    int sel;
    const double wv =
        adaptive_kde_select_bandwidth(g, gsr + int64_t(m) * M, M, tb, gmax[m], gmin[m], &sel);
    optwv[m] = wv;
    const double* row = (sel >= 0 ? tb.gext + sel * E + (L - 1) : g > gmax[m] ? g_over : g_under) - m;
    FC_ADAPTIVE_KDE_SIMD
    for (int k = 0; k < L; ++k) {
      num[k] += wv * row[k];
      den[k] += row[k];
    }
  }
  for (int k = 0; k < L; ++k) {
    optwp[k] = num[k] / den[k];
    w2[k] = -0.5 / (optwp[k] * optwp[k]);
    yv[k] = 0.0;
  }
  for (int m = 0; m < L; ++m) {
    if (y[m] == 0.0) continue;
    const double c = y[m] * dt, tm = t[m];
    FC_ADAPTIVE_KDE_SIMD
    for (int k = 0; k < L; ++k) {
      const double d = t[k] - tm;
      yv[k] += c * adaptive_kde_exp(d * d * w2[k]);
    }
  }
  double mass = 0.0;
  for (int k = 0; k < L; ++k) {
    yv[k] = yv[k] / optwp[k];
    mass += yv[k] * dt;
  }
  const double kC = 2.0 / sqrt(2.0 * 3.14159265358979323846);
  double cost = 0.0;
  for (int k = 0; k < L; ++k) {
    yv[k] = yv[k] * N / mass;
    cost += (yv[k] * yv[k] - 2.0 * yv[k] * y[k] + kC / optwp[k] * y[k]) * dt;
  }
  return cost;
}

// Golden-section search over [1e-12, 1] as ssvkernel: the caller evaluates
// f1 = C(c1), f2 = C(c2), then while active(): g = propose(); accept(C(g)).
struct AdaptiveKdeGolden {
  double a, b, c1, c2, f1, f2;
  bool left;
};

FC_HD double adaptive_kde_phi() { return (sqrt(5.0) + 1.0) / 2.0; }

FC_HD AdaptiveKdeGolden adaptive_kde_golden_init() {
  const double phi = adaptive_kde_phi();
  AdaptiveKdeGolden s;
  s.a = 1e-12;
  s.b = 1.0;
  s.c1 = (phi - 1.0) * s.a + (2.0 - phi) * s.b;
  s.c2 = (2.0 - phi) * s.a + (phi - 1.0) * s.b;
  s.f1 = s.f2 = 0.0;
  s.left = false;
  return s;
}

FC_HD bool adaptive_kde_golden_active(const AdaptiveKdeGolden& s, double tol) {
  return fabs(s.b - s.a) > tol * (fabs(s.c1) + fabs(s.c2));
}

// Shrinks the bracket towards the smaller of f1, f2; returns the new point.
FC_HD double adaptive_kde_golden_propose(AdaptiveKdeGolden& s) {
  const double phi = adaptive_kde_phi();
  s.left = s.f1 < s.f2;
  if (s.left) {
    s.b = s.c2;
    s.c2 = s.c1;
    s.c1 = (phi - 1.0) * s.a + (2.0 - phi) * s.b;
    return s.c1;
  }
  s.a = s.c1;
  s.c1 = s.c2;
  s.c2 = (2.0 - phi) * s.a + (phi - 1.0) * s.b;
  return s.c2;
}

FC_HD void adaptive_kde_golden_accept(AdaptiveKdeGolden& s, double f) {
  if (s.left) {
    s.f2 = s.f1;
    s.f1 = f;
  } else {
    s.f1 = s.f2;
    s.f2 = f;
  }
}

// ---------------------------------------------------------------------------
// Output: numpy.interp(linspace(0,1,Z)[i], t, fp) and the peak count.
// ---------------------------------------------------------------------------
FC_HD double adaptive_kde_interp(double xq, const double* t, const double* fp, int L) {
  if (xq >= t[L - 1]) return fp[L - 1];
  int lo = 0, hi = L - 2;  // largest j <= L-2 with t[j] <= xq
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (t[mid] <= xq) lo = mid; else hi = mid - 1;
  }
  return (fp[lo + 1] - fp[lo]) / (t[lo + 1] - t[lo]) * (xq - t[lo]) + fp[lo];
}

// Interior local maxima, a flat top counted once (MATLAB's findpeaks): the
// number of + -> - changes in the signs of consecutive differences, zero
// differences skipped.
FC_HD int adaptive_kde_count_peaks(const double* y, int Z) {
  int peaks = 0, last = 0;
  for (int i = 1; i < Z; ++i) {
    const double d = y[i] - y[i - 1];
    const int s = (d > 0.0) - (d < 0.0);
    if (s == 0) continue;
    if (s < 0 && last > 0) ++peaks;
    last = s;
  }
  return peaks;
}

// Scratch doubles adaptive_kde_channel needs for a grid of L points.
FC_HD int64_t adaptive_kde_scratch_size(int L, int M) { return int64_t(3 * M + 12) * L; }

// ---------------------------------------------------------------------------
// One channel, start to end: samples x (S), grid size L = adaptive_kde_grid_size(x)
// (> 0) and its tables, output density (Z) on linspace(0, 1, Z); returns the
// number of peaks. scratch: adaptive_kde_scratch_size(L, M) doubles.
// ---------------------------------------------------------------------------
FC_HD int adaptive_kde_channel(const double* x, int S, int Z, const AdaptiveKdeTables& tb, int M,
                               int max_iter, double tol, double* scratch, double* density) {
  const int L = tb.L;
  double* y = scratch;
  double* t = y + L;
  double* gmax = t + L;
  double* gmin = gmax + L;
  double* optwv = gmin + L;
  double* optwp = optwv + L;
  double* yv = optwp + L;
  double* w1 = yv + L;
  double* gsr = w1 + L;                 // L*M
  double* c = gsr + int64_t(L) * M;     // M*L
  double* acc = c + int64_t(M) * L;     // M*L; w2 and yopt once the bandwidths are known
  double* w2 = acc;
  double* yopt = acc + L;
  double* w3 = acc + int64_t(M) * L;    // 2(2L-1) <= 4L
  for (int k = 0; k < L; ++k) t[k] = adaptive_kde_linspace01(k, L);
  const double N = adaptive_kde_histogram(x, S, L, tb.dt, y);
  adaptive_kde_local_bandwidths(y, tb, M, c, acc, gsr, gmax, gmin);
  AdaptiveKdeGolden gs = adaptive_kde_golden_init();
  gs.f1 = adaptive_kde_cost(gs.c1, y, N, t, gsr, gmax, gmin, M, tb, optwv, optwp, yv, w1, w2, w3);
  gs.f2 = adaptive_kde_cost(gs.c2, y, N, t, gsr, gmax, gmin, M, tb, optwv, optwp, yv, w1, w2, w3);
  for (int k = 0; k < L; ++k) yopt[k] = 0.0;
  for (int it = 0; it < max_iter && adaptive_kde_golden_active(gs, tol); ++it) {
    const double g = adaptive_kde_golden_propose(gs);
    adaptive_kde_golden_accept(gs, adaptive_kde_cost(g, y, N, t, gsr, gmax, gmin, M, tb, optwv,
                                                     optwp, yv, w1, w2, w3));
    double mass = 0.0;
    for (int k = 0; k < L; ++k) mass += yv[k] * tb.dt;
    for (int k = 0; k < L; ++k) yopt[k] = yv[k] / mass;
  }
  if (L == Z) {
    for (int i = 0; i < Z; ++i) density[i] = yopt[i];
  } else {
    for (int i = 0; i < Z; ++i)
      density[i] = adaptive_kde_interp(adaptive_kde_linspace01(i, Z), t, yopt, L);
  }
  return adaptive_kde_count_peaks(density, Z);
}

}  // namespace fastcam
