// Mamba's selective scan on the CPU: the forward and backward loops of _selective_scan.py in C++.
//
// Same recurrence as _run / _SelectiveScan.backward there, in the model's layout (no transposed copies):
// dl, du [B, T, D], bt, ct [B, T, N], keep [B, T] (1, or 0 at a reset; empty: no resets), the states
// h0, hlast [B, D, N] and states [B, T, D, N]; at [N, D] and the kept states ckpt [S, B, N, D] as there.
// One lane's state (N * D numbers, 8 KiB for N = 16, D = 126 in float32) stays in the L1 cache for the
// whole frame loop; lanes are split over torch's threads (at::parallel_for, torch.get_num_threads()).
// The inner loop over D is written for the compiler's vectoriser, with an exp of our own (below) so that
// it vectorises too; the loop functions are compiled for AVX-512, for AVX2 + FMA and for plain x86-64 and
// picked at run time, so one cached build (no -march) serves any x86-64 machine.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#define NRS_INLINE inline __attribute__((always_inline))

namespace {

template <typename T> struct Bits;
template <> struct Bits<float> { using type = int32_t; };
template <> struct Bits<double> { using type = int64_t; };

// exp(x) by Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2, a polynomial for exp(r) and 2^n built in the
// exponent bits; n is rounded with the 1.5 * 2^m trick (exact in IEEE arithmetic, no float->int conversion),
// so every step is plain arithmetic or a bit operation the vectoriser handles. Below the smallest normal
// number the result is 0 (libm gives a subnormal there, < 1.2e-38 in float32); NaN stays NaN.
NRS_INLINE float vexp(float x) {
  const float hi = 88.7f, lo = -87.3f;
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  const float magic = 12582912.0f;  // 1.5 * 2^23
  float t = xc * 1.44269504088896341f + magic;
  float n = t - magic;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t tb;
  std::memcpy(&tb, &t, sizeof tb);
  int32_t eb = (tb - 0x4B400000 + 127) << 23;
  float scale;
  std::memcpy(&scale, &eb, sizeof scale);
  float out = p * scale;
  return x < lo ? 0.0f : out;
}

NRS_INLINE double vexp(double x) {
  const double hi = 709.0, lo = -708.0;
  double xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  const double magic = 6755399441055744.0;  // 1.5 * 2^52
  double t = xc * 1.4426950408889634074 + magic;
  double n = t - magic;
  double r = xc - n * 6.93145751953125e-1;
  r = r - n * 1.42860682030941723212e-6;
  // Taylor to r^13: the remainder is below 1e-17 relative for |r| <= 0.347
  double p = 1.0 / 6227020800.0;
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
  int64_t tb;
  std::memcpy(&tb, &t, sizeof tb);
  int64_t eb = (tb - 0x4338000000000000LL + 1023) << 52;
  double scale;
  std::memcpy(&scale, &eb, sizeof scale);
  double out = p * scale;
  return x < lo ? 0.0 : out;
}

struct Shape {
  int64_t steps, lanes, n, d, segment;
  bool times_delta;  // the input is u and du = delta * u is formed here (its gradients too)
};

// Rows are padded to a multiple of 16 numbers (dp) in per-thread buffers, so that every inner loop is whole
// vectors, without a scalar tail; the padding holds zeros (A = 0, delta = 0, du = 0: a = 1, h stays 0).
inline int64_t padded(int64_t d) { return (d + 15) / 16 * 16; }

template <typename S>
NRS_INLINE void load_row(S* __restrict dst, const S* __restrict src, int64_t d) {
  std::memcpy(dst, src, d * sizeof(S));
}

// The next frame's rows are asked for while this one is computed (the backward walks them backwards).
template <typename S>
NRS_INLINE void prefetch_row(const S* p, int64_t d) {
  for (int64_t i = 0; i < d; i += 64 / sizeof(S)) __builtin_prefetch(p + i);
  __builtin_prefetch(p + d - 1);
}

// this frame's du (and u, where the input is u) into padded rows
template <typename S>
NRS_INLINE void load_inputs(const Shape& sh, S* __restrict du_t, S* __restrict u_t, const S* __restrict dl_t,
                            const S* __restrict src, int64_t dp) {
  if (sh.times_delta) {
    load_row(u_t, src, sh.d);
    for (int64_t d = 0; d < dp; ++d) du_t[d] = dl_t[d] * u_t[d];
  } else {
    load_row(du_t, src, sh.d);
  }
}

// a state in the model's layout [D, N] (src) <-> [N, dp] (buffer)
template <typename S>
NRS_INLINE void load_t(S* __restrict dst, const S* __restrict src, int64_t n, int64_t d, int64_t dp) {
  for (int64_t j = 0; j < d; ++j)
    for (int64_t i = 0; i < n; ++i) dst[i * dp + j] = src[j * n + i];
}
template <typename S>
NRS_INLINE void store_t(S* __restrict dst, const S* __restrict src, int64_t n, int64_t d, int64_t dp) {
  for (int64_t j = 0; j < d; ++j)
    for (int64_t i = 0; i < n; ++i) dst[j * n + i] = src[i * dp + j];
}

// [N, D] (src, row stride d) <-> [N, dp] (buffer)
template <typename S>
NRS_INLINE void load_rows(S* __restrict dst, const S* __restrict src, int64_t n, int64_t d, int64_t dp) {
  for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * dp, src + i * d, d * sizeof(S));
}
template <typename S>
NRS_INLINE void store_rows(S* __restrict dst, const S* __restrict src, int64_t n, int64_t d, int64_t dp) {
  for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * d, src + i * dp, d * sizeof(S));
}

// Forward of lanes [lo, hi): y, hlast, and where non-null the state before every segment-th frame
// (ckpt [S, B, N, D]) and every state (states [T, B, N, D]).
template <typename S>
NRS_INLINE void forward_impl(const Shape& sh, const S* dl, const S* at, const S* du, const S* bt, const S* ct,
                             const S* keep, const S* skip, const S* h0, S* y, S* hlast, S* ckpt, S* states,
                             int64_t lo, int64_t hi) {
  const int64_t N = sh.n, D = sh.d, B = sh.lanes, ND = N * D, dp = padded(D), NP = N * dp;
  std::vector<S> work(2 * NP + 4 * dp, S(0));
  S* __restrict h = work.data();
  S* __restrict ap = h + NP;
  S* __restrict dl_t = ap + NP;
  S* __restrict du_t = dl_t + dp;
  S* __restrict y_t = du_t + dp;
  S* __restrict u_t = y_t + dp;
  load_rows(ap, at, N, D, dp);
  for (int64_t b = lo; b < hi; ++b) {
    load_t(h, h0 + b * ND, N, D, dp);
    for (int64_t t = 0; t < sh.steps; ++t) {
      if (ckpt && t % sh.segment == 0) store_rows(ckpt + ((t / sh.segment) * B + b) * ND, h, N, D, dp);
      const int64_t row = b * sh.steps + t;
      if (t + 1 < sh.steps) {
        const int64_t next = row + 1;
        prefetch_row(dl + next * D, D), prefetch_row(du + next * D, D);
        prefetch_row(bt + next * N, N), prefetch_row(ct + next * N, N);
      }
      load_row(dl_t, dl + row * D, D);
      load_inputs(sh, du_t, u_t, dl_t, du + row * D, dp);
      const S* __restrict b_t = bt + row * N;
      const S* __restrict c_t = ct + row * N;
      const S k = keep ? keep[row] : S(1);
      for (int64_t d = 0; d < dp; ++d) y_t[d] = 0;
      for (int64_t n = 0; n < N; ++n) {
        const S bn = b_t[n], cn = c_t[n];
        const S* __restrict a_n = ap + n * dp;
        S* __restrict h_n = h + n * dp;
#pragma omp simd
        for (int64_t d = 0; d < dp; ++d) {
          S a = vexp(dl_t[d] * a_n[d]) * k;
          S v = a * h_n[d] + bn * du_t[d];
          h_n[d] = v;
          y_t[d] += cn * v;
        }
      }
      if (skip) {
        for (int64_t d = 0; d < D; ++d) y_t[d] += skip[d] * u_t[d];
      }
      std::memcpy(y + row * D, y_t, D * sizeof(S));
      if (states) store_t(states + row * ND, h, N, D, dp);
    }
    store_t(hlast + b * ND, h, N, D, dp);
  }
}

// Backward of lanes [lo, hi): recomputes each segment's states and decays from its checkpoint into a
// small per-thread buffer (segment * N * D numbers, in the L2 cache) and walks it backwards. ga [B, N, D]
// gets each lane's share of dA (summed over lanes by the caller: deterministic whatever the threads).
template <typename S>
NRS_INLINE void backward_impl(const Shape& sh, const S* dl, const S* at, const S* du, const S* bt, const S* ct,
                              const S* keep, const S* skip, const S* ckpt, const S* gy, const S* ghlast,
                              const S* gstates, S* gdl, S* ga, S* gdu, S* gb, S* gc, S* gh0, S* gskip, int64_t lo,
                              int64_t hi) {
  const int64_t N = sh.n, D = sh.d, B = sh.lanes, ND = N * D, seg = sh.segment, dp = padded(D), NP = N * dp;
  const int64_t n_seg = (sh.steps + seg - 1) / seg;
  std::vector<S> work((2 * seg + 5) * NP + 8 * dp, S(0));
  S* __restrict g = work.data();
  S* __restrict acc = g + NP;
  S* __restrict ap = acc + NP;
  S* __restrict first = ap + NP;  // the segment's checkpoint
  S* __restrict gs = first + NP;  // dL/dh_t from the states output
  S* __restrict seg_h = gs + NP;
  S* __restrict seg_a = seg_h + seg * NP;
  S* __restrict dl_t = seg_a + seg * NP;
  S* __restrict du_t = dl_t + dp;
  S* __restrict gy_t = du_t + dp;
  S* __restrict gdl_t = gy_t + dp;
  S* __restrict gdu_t = gdl_t + dp;
  S* __restrict u_t = gdu_t + dp;
  S* __restrict gsk = u_t + dp;  // this lane's d skip
  load_rows(ap, at, N, D, dp);
  for (int64_t b = lo; b < hi; ++b) {
    if (ghlast) {
      load_t(g, ghlast + b * ND, N, D, dp);
    } else {
      for (int64_t i = 0; i < NP; ++i) g[i] = 0;
    }
    for (int64_t i = 0; i < NP; ++i) acc[i] = 0;
    for (int64_t d = 0; d < dp; ++d) gsk[d] = 0;
    for (int64_t s = n_seg - 1; s >= 0; --s) {
      const int64_t begin = s * seg, end = std::min(sh.steps, begin + seg);
      load_rows(first, ckpt + (s * B + b) * ND, N, D, dp);
      const S* prev = first;
      for (int64_t t = begin; t < end; ++t) {  // this segment's decays and states again
        const int64_t row = b * sh.steps + t;
        if (t + 1 < end) {
          const int64_t next = row + 1;
          prefetch_row(dl + next * D, D), prefetch_row(du + next * D, D), prefetch_row(bt + next * N, N);
        }
        load_row(dl_t, dl + row * D, D);
        load_inputs(sh, du_t, u_t, dl_t, du + row * D, dp);
        const S* __restrict b_t = bt + row * N;
        const S k = keep ? keep[row] : S(1);
        S* __restrict a_out = seg_a + (t - begin) * NP;
        S* __restrict h_out = seg_h + (t - begin) * NP;
        for (int64_t n = 0; n < N; ++n) {
          const S bn = b_t[n];
          const S* __restrict a_n = ap + n * dp;
          const S* __restrict p_n = prev + n * dp;
          S* __restrict ao_n = a_out + n * dp;
          S* __restrict ho_n = h_out + n * dp;
#pragma omp simd
          for (int64_t d = 0; d < dp; ++d) {
            S a = vexp(dl_t[d] * a_n[d]) * k;
            ao_n[d] = a;
            ho_n[d] = a * p_n[d] + bn * du_t[d];
          }
        }
        prev = h_out;
      }
      for (int64_t t = end - 1; t >= begin; --t) {
        const int64_t row = b * sh.steps + t;
        if (t > begin) {  // the previous frame's inputs (its dl, du, b were just read again: gy and c)
          const int64_t next = row - 1;
          prefetch_row(gy + next * D, D), prefetch_row(ct + next * N, N);
          if (gstates) prefetch_row(gstates + next * ND, ND);
        } else if (s > 0) {  // the segment before: its checkpoint and first inputs
          prefetch_row(ckpt + ((s - 1) * B + b) * ND, ND);
        }
        load_row(dl_t, dl + row * D, D);
        load_inputs(sh, du_t, u_t, dl_t, du + row * D, dp);
        load_row(gy_t, gy + row * D, D);
        if (gstates) load_t(gs, gstates + row * ND, N, D, dp);
        const S* __restrict b_t = bt + row * N;
        const S* __restrict c_t = ct + row * N;
        const S* __restrict h_t = seg_h + (t - begin) * NP;
        const S* __restrict a_t = seg_a + (t - begin) * NP;
        const S* __restrict h_p = t > begin ? seg_h + (t - begin - 1) * NP : first;
        for (int64_t d = 0; d < dp; ++d) gdl_t[d] = gdu_t[d] = 0;
        for (int64_t n = 0; n < N; ++n) {
          const S bn = b_t[n], cn = c_t[n];
          const S* __restrict a_n = ap + n * dp;
          S* __restrict g_n = g + n * dp;
          S* __restrict acc_n = acc + n * dp;
          const S* __restrict ht_n = h_t + n * dp;
          const S* __restrict at_n = a_t + n * dp;
          const S* __restrict hp_n = h_p + n * dp;
          if (gstates) {
            const S* __restrict gs_n = gs + n * dp;
#pragma omp simd
            for (int64_t d = 0; d < dp; ++d) g_n[d] += gs_n[d];
          }
          S sc = 0, sb = 0;
#pragma omp simd reduction(+ : sc, sb)
          for (int64_t d = 0; d < dp; ++d) {
            S gv = g_n[d] + cn * gy_t[d];  // dL/dh_t: from y_t, and from h_{t+1} (already in g)
            sc += gy_t[d] * ht_n[d];       // dC_t = dy_t . h_t
            sb += du_t[d] * gv;            // dB_t = du_t . dh_t
            gdu_t[d] += bn * gv;           // d du_t = B_t . dh_t
            S ga_v = gv * at_n[d];         // now dL/dh_{t-1}
            S q = ga_v * hp_n[d];          // dL/d(log a_t)
            acc_n[d] += q * dl_t[d];       // dA += q * delta_t
            gdl_t[d] += q * a_n[d];        // d delta_t = sum_n q * A
            g_n[d] = ga_v;
          }
          gc[row * N + n] = sc;
          gb[row * N + n] = sb;
        }
        if (sh.times_delta) {  // du = delta * u
          for (int64_t d = 0; d < dp; ++d) {
            gdl_t[d] += gdu_t[d] * u_t[d];
            gdu_t[d] = gdu_t[d] * dl_t[d];  // now d u
          }
        }
        if (skip) {  // y += skip * u
          for (int64_t d = 0; d < dp; ++d) {
            gdu_t[d] += gy_t[d] * skip[d];
            gsk[d] += gy_t[d] * u_t[d];
          }
        }
        std::memcpy(gdl + row * D, gdl_t, D * sizeof(S));
        std::memcpy(gdu + row * D, gdu_t, D * sizeof(S));
      }
    }
    store_t(gh0 + b * ND, g, N, D, dp);
    store_rows(ga + b * ND, acc, N, D, dp);
    if (gskip) std::memcpy(gskip + b * D, gsk, D * sizeof(S));
  }
}

// One copy of the loops per instruction set, picked at run time: AVX-512 (512-bit vectors), AVX2 + FMA,
// and the x86-64 baseline; elsewhere the compiler's default only.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NRS_X86 1
#define NRS_V4 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,prefer-vector-width=512")))
#define NRS_V3 __attribute__((target("avx2,fma")))
#endif

#define NRS_VARIANT(ATTR, SUFFIX, S)                                                                              \
  ATTR void forward_##SUFFIX(const Shape& sh, const S* dl, const S* at, const S* du, const S* bt, const S* ct,   \
                             const S* keep, const S* skip, const S* h0, S* y, S* hlast, S* ckpt, S* states,       \
                             int64_t lo, int64_t hi) {                                                            \
    forward_impl<S>(sh, dl, at, du, bt, ct, keep, skip, h0, y, hlast, ckpt, states, lo, hi);                      \
  }                                                                                                               \
  ATTR void backward_##SUFFIX(const Shape& sh, const S* dl, const S* at, const S* du, const S* bt, const S* ct,  \
                              const S* keep, const S* skip, const S* ckpt, const S* gy, const S* ghlast,          \
                              const S* gstates, S* gdl, S* ga, S* gdu, S* gb, S* gc, S* gh0, S* gskip,            \
                              int64_t lo, int64_t hi) {                                                           \
    backward_impl<S>(sh, dl, at, du, bt, ct, keep, skip, ckpt, gy, ghlast, gstates, gdl, ga, gdu, gb, gc, gh0,   \
                     gskip, lo, hi);                                                                              \
  }

NRS_VARIANT(, base, float)
NRS_VARIANT(, base, double)
#ifdef NRS_X86
NRS_VARIANT(NRS_V4, v4, float)
NRS_VARIANT(NRS_V4, v4, double)
NRS_VARIANT(NRS_V3, v3, float)
NRS_VARIANT(NRS_V3, v3, double)
#endif

// 4: AVX-512, 3: AVX2 + FMA, 0: baseline; NRSTREAM_SCAN_ISA=0/3/4 caps it (for tests and measurements)
int isa_level() {
  static const int level = [] {
    int found = 0;
#ifdef NRS_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) found = 3;
    if (found == 3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
      found = 4;
#endif
    const char* cap = std::getenv("NRSTREAM_SCAN_ISA");
    if (cap && *cap) found = std::min(found, std::atoi(cap));
    return found;
  }();
  return level;
}

template <typename S, typename... A>
void forward_lanes(A... args) {
#ifdef NRS_X86
  if (isa_level() >= 4) return forward_v4(args...);
  if (isa_level() >= 3) return forward_v3(args...);
#endif
  forward_base(args...);
}

template <typename S, typename... A>
void backward_lanes(A... args) {
#ifdef NRS_X86
  if (isa_level() >= 4) return backward_v4(args...);
  if (isa_level() >= 3) return backward_v3(args...);
#endif
  backward_base(args...);
}

template <typename S>
const S* opt(const torch::Tensor& x) {
  return x.numel() ? x.data_ptr<S>() : nullptr;
}

template <typename S>
S* opt_mut(torch::Tensor& x) {
  return x.numel() ? x.data_ptr<S>() : nullptr;
}

void check(const torch::Tensor& x, const torch::Tensor& like, const char* name) {
  TORCH_CHECK(x.numel() == 0 || (x.is_contiguous() && x.device().is_cpu() && x.scalar_type() == like.scalar_type()),
              "selective scan kernel: ", name, " must be a contiguous CPU tensor of the inputs' dtype");
}

}  // namespace

// Writes y [B, T, D], hlast [B, D, N], and where they are not empty ckpt [S, B, N, D], states [B, T, D, N].
// times_delta: du holds u, and du = delta * u; skip [D] (or empty): y += skip * u (times_delta only).
void forward(torch::Tensor dl, torch::Tensor at, torch::Tensor du, torch::Tensor bt, torch::Tensor ct,
             torch::Tensor keep, torch::Tensor skip, torch::Tensor h0, torch::Tensor y, torch::Tensor hlast,
             torch::Tensor ckpt, torch::Tensor states, int64_t segment, bool times_delta) {
  const char* names[] = {"dl", "at", "du", "bt", "ct", "keep", "skip", "h0", "y", "hlast", "ckpt", "states"};
  int i = 0;
  for (const auto* x : {&dl, &at, &du, &bt, &ct, &keep, &skip, &h0, &y, &hlast, &ckpt, &states})
    check(*x, dl, names[i++]);
  TORCH_CHECK(times_delta || skip.numel() == 0, "selective scan kernel: a skip needs u (times_delta)");
  const Shape sh{dl.size(1), dl.size(0), at.size(0), at.size(1), segment, times_delta};
  AT_DISPATCH_FLOATING_TYPES(dl.scalar_type(), "selective_scan_forward", [&] {
    at::parallel_for(0, sh.lanes, 1, [&](int64_t lo, int64_t hi) {
      forward_lanes<scalar_t>(sh, dl.data_ptr<scalar_t>(), at.data_ptr<scalar_t>(), du.data_ptr<scalar_t>(),
                              bt.data_ptr<scalar_t>(), ct.data_ptr<scalar_t>(), opt<scalar_t>(keep),
                              opt<scalar_t>(skip), h0.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                              hlast.data_ptr<scalar_t>(), opt_mut<scalar_t>(ckpt), opt_mut<scalar_t>(states), lo, hi);
    });
  });
}

// Writes the gradients gdl, gdu [B, T, D] (of u where times_delta), gb, gc [B, T, N], gh0 [B, D, N],
// ga [B, N, D] (dA per lane) and, where a skip is given, gskip [B, D] (per lane).
void backward(torch::Tensor dl, torch::Tensor at, torch::Tensor du, torch::Tensor bt, torch::Tensor ct,
              torch::Tensor keep, torch::Tensor skip, torch::Tensor ckpt, torch::Tensor gy, torch::Tensor ghlast,
              torch::Tensor gstates, torch::Tensor gdl, torch::Tensor ga, torch::Tensor gdu, torch::Tensor gb,
              torch::Tensor gc, torch::Tensor gh0, torch::Tensor gskip, int64_t segment, bool times_delta) {
  const char* names[] = {"dl", "at", "du", "bt", "ct", "keep", "skip", "ckpt", "gy", "ghlast", "gstates",
                         "gdl", "ga", "gdu", "gb", "gc", "gh0", "gskip"};
  int i = 0;
  for (const auto* x : {&dl, &at, &du, &bt, &ct, &keep, &skip, &ckpt, &gy, &ghlast, &gstates, &gdl, &ga, &gdu, &gb,
                        &gc, &gh0, &gskip})
    check(*x, dl, names[i++]);
  TORCH_CHECK(gy.numel() == dl.numel(), "selective scan kernel: gy must be given");
  TORCH_CHECK(times_delta || skip.numel() == 0, "selective scan kernel: a skip needs u (times_delta)");
  TORCH_CHECK(skip.numel() == 0 || gskip.numel() == dl.size(0) * dl.size(2), "selective scan kernel: gskip [B, D]");
  const Shape sh{dl.size(1), dl.size(0), at.size(0), at.size(1), segment, times_delta};
  AT_DISPATCH_FLOATING_TYPES(dl.scalar_type(), "selective_scan_backward", [&] {
    at::parallel_for(0, sh.lanes, 1, [&](int64_t lo, int64_t hi) {
      backward_lanes<scalar_t>(sh, dl.data_ptr<scalar_t>(), at.data_ptr<scalar_t>(), du.data_ptr<scalar_t>(),
                               bt.data_ptr<scalar_t>(), ct.data_ptr<scalar_t>(), opt<scalar_t>(keep),
                               opt<scalar_t>(skip), ckpt.data_ptr<scalar_t>(), gy.data_ptr<scalar_t>(),
                               opt<scalar_t>(ghlast), opt<scalar_t>(gstates), gdl.data_ptr<scalar_t>(),
                               ga.data_ptr<scalar_t>(), gdu.data_ptr<scalar_t>(), gb.data_ptr<scalar_t>(),
                               gc.data_ptr<scalar_t>(), gh0.data_ptr<scalar_t>(),
                               skip.numel() ? gskip.data_ptr<scalar_t>() : nullptr, lo, hi);
    });
  });
}
