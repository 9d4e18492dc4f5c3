// Per-sample loops of the spherical samplers and the Bessel functions, for CPU tensors (built by svae/native.py).
//
// At the batch sizes of a training step the samplers and the KL cost the number of small tensor
// operations (a few microseconds of dispatch each), not arithmetic. Each function here is one loop
// over the samples doing what wood.py, householder.py and special.py do with dozens of tensor
// operations, in the same order of floating-point operations (sums excepted), so the two agree to
// rounding; the Python code stays the reference and the path for every other device.
#include <torch/extension.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

namespace {

void check_cpu(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(), name, " must be a contiguous CPU tensor");
}

// Rows are independent: split them over torch's intra-op threads (a small batch takes one).
template <typename F>
void for_each_row(int64_t n, const F& body) {
  at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) body(i);
  });
}

// wood.py, envelope_b: b = ((m-1)/4) / (kappa/2 + h), h = hypot(kappa/2, (m-1)/4) (returned; a
// quarter of hypot(2 kappa, m-1), whose form overflows for float32 kappa above 8.5e37).
template <typename T>
inline T envelope_b(T kappa, int64_t m, T& h) {
  const T half = kappa / 2, quarter = T(m - 1) / 4;
  h = std::hypot(half, quarter);
  return quarter / (half + h);
}

// wood.py, _first_accepted with its random numbers given: row i holds the draws of `count`
// proposals under the envelope of kappa[i]; returns (P, M, accepted) of the first accepted one
// (zeros where none was).
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> first_accepted(
    const torch::Tensor& kappa, const torch::Tensor& gamma, const torch::Tensor& normal,
    const torch::Tensor& exponential, int64_t m) {
  for (auto* t : {&kappa, &gamma, &normal, &exponential}) check_cpu(*t, "first_accepted: every input");
  const int64_t n = kappa.numel(), count = n ? gamma.numel() / n : 0;
  auto p = torch::zeros_like(kappa), q = torch::zeros_like(kappa);
  auto accepted = torch::zeros(kappa.sizes(), kappa.options().dtype(torch::kBool));
  AT_DISPATCH_FLOATING_TYPES(kappa.scalar_type(), "first_accepted", [&] {
    const scalar_t *k_ = kappa.data_ptr<scalar_t>(), *g_ = gamma.data_ptr<scalar_t>();
    const scalar_t *n_ = normal.data_ptr<scalar_t>(), *e_ = exponential.data_ptr<scalar_t>();
    scalar_t *p_ = p.data_ptr<scalar_t>(), *q_ = q.data_ptr<scalar_t>();
    bool* a_ = accepted.data_ptr<bool>();
    const scalar_t dof = static_cast<scalar_t>(m - 1);
    for_each_row(n, [&](int64_t i) {
      scalar_t h;
      const scalar_t bi = envelope_b(k_[i], m, h);
      for (int64_t k = i * count; k < (i + 1) * count; ++k) {
        const scalar_t chi2 = 2 * g_[k], x = n_[k];
        const scalar_t larger = std::sqrt(x * x + chi2) + std::abs(x), smaller = chi2 / larger;
        const scalar_t pk = x >= 0 ? larger : smaller, qk = x >= 0 ? smaller : larger;
        const scalar_t y = (1 - bi) * (pk - qk) / (2 * (qk + bi * pk));
        if (dof * (std::log1p(y) - y) >= -e_[k]) {
          p_[i] = pk, q_[i] = qk, a_[i] = true;
          break;
        }
      }
    });
  });
  return {p, q, accepted};
}

// householder.py, rotate_from_pole, for one row: z = w loc + s (v - d loc - sign(loc_1) d e_1),
// with w = (c - a)/2, s = sqrt(max(a c, tiny)), d = loc^T v / (1 + |loc_1|).
template <typename T>
inline void rotate_row(const T* loc, T a, T c, const T* v, T* z, int64_t m) {
  const T w = T(0.5) * (c - a), s = std::sqrt(std::max(a * c, std::numeric_limits<T>::min()));
  T dot = 0;
  for (int64_t j = 0; j < m; ++j) dot += loc[j] * v[j];
  const T d = dot / (1 + std::abs(loc[0])), along = w - s * d;
  for (int64_t j = 0; j < m; ++j) z[j] = along * loc[j] + s * v[j];
  z[0] -= s * (loc[0] >= 0 ? d : -d);
}

// Its gradients in loc (written to grad_loc) and in (a, c) (returned), the derivative of |loc_1|
// taken as sign(loc_1) (0 at 0), as torch's abs has it. With G = g^T loc, V = g^T v, t = sign(loc_1)
// (+1 at 0) and g = grad_z:
//   dL/dw = G,   dL/ds = V - d G - t d g_1,   dL/dd = -s (G + t g_1),
//   dL/dloc = (w - s d) g + dL/dd (v - sign(loc_1) d e_1) / (1 + |loc_1|),
//   dL/da = -dL/dw / 2 + dL/ds c / (2 s),   dL/dc = dL/dw / 2 + dL/ds a / (2 s)   (0 where a c < tiny).
template <typename T>
inline std::pair<T, T> rotate_row_backward(const T* g, const T* loc, T a, T c, const T* v, T* grad_loc,
                                           int64_t m) {
  const T w = T(0.5) * (c - a), tiny = std::numeric_limits<T>::min();
  const bool clamped = !(a * c >= tiny);
  const T s = std::sqrt(std::max(a * c, tiny));
  T dot = 0, G = 0, V = 0;
  for (int64_t j = 0; j < m; ++j) dot += loc[j] * v[j], G += g[j] * loc[j], V += g[j] * v[j];
  const T scale = 1 / (1 + std::abs(loc[0])), d = dot * scale;
  const T t = loc[0] >= 0 ? T(1) : T(-1), sign = loc[0] > 0 ? T(1) : (loc[0] < 0 ? T(-1) : T(0));
  const T dL_ds = V - d * G - t * d * g[0], dL_dd = -s * (G + t * g[0]);
  for (int64_t j = 0; j < m; ++j) grad_loc[j] = (w - s * d) * g[j] + dL_dd * scale * v[j];
  grad_loc[0] -= dL_dd * scale * sign * d;
  const T ds = clamped ? T(0) : dL_ds / (2 * s);
  return {-T(0.5) * G + ds * c, T(0.5) * G + ds * a};
}

// rotate_from_pole on rows of (n, m) tensors, and its backward.
torch::Tensor rotate_from_pole(const torch::Tensor& loc, const torch::Tensor& one_minus_w,
                               const torch::Tensor& one_plus_w, const torch::Tensor& v) {
  for (auto* t : {&loc, &one_minus_w, &one_plus_w, &v}) check_cpu(*t, "rotate_from_pole: every input");
  const int64_t n = one_minus_w.numel(), m = loc.size(-1);
  auto z = torch::empty_like(v);
  AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "rotate_from_pole", [&] {
    const scalar_t *l = loc.data_ptr<scalar_t>(), *v_ = v.data_ptr<scalar_t>();
    const scalar_t *a = one_minus_w.data_ptr<scalar_t>(), *c = one_plus_w.data_ptr<scalar_t>();
    scalar_t* z_ = z.data_ptr<scalar_t>();
    for_each_row(n, [&](int64_t i) { rotate_row(l + i * m, a[i], c[i], v_ + i * m, z_ + i * m, m); });
  });
  return z;
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> rotate_from_pole_backward(
    const torch::Tensor& grad_z, const torch::Tensor& loc, const torch::Tensor& one_minus_w,
    const torch::Tensor& one_plus_w, const torch::Tensor& v) {
  for (auto* t : {&grad_z, &loc, &one_minus_w, &one_plus_w, &v}) check_cpu(*t, "rotate_from_pole_backward: every input");
  const int64_t n = one_minus_w.numel(), m = loc.size(-1);
  auto grad_loc = torch::empty_like(loc);
  auto grad_a = torch::empty_like(one_minus_w), grad_c = torch::empty_like(one_plus_w);
  AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "rotate_from_pole_backward", [&] {
    const scalar_t *g = grad_z.data_ptr<scalar_t>(), *l = loc.data_ptr<scalar_t>(), *v_ = v.data_ptr<scalar_t>();
    const scalar_t *a = one_minus_w.data_ptr<scalar_t>(), *c = one_plus_w.data_ptr<scalar_t>();
    scalar_t *gl = grad_loc.data_ptr<scalar_t>(), *ga = grad_a.data_ptr<scalar_t>(), *gc = grad_c.data_ptr<scalar_t>();
    for_each_row(n, [&](int64_t i) {
      std::tie(ga[i], gc[i]) = rotate_row_backward(g + i * m, l + i * m, a[i], c[i], v_ + i * m, gl + i * m, m);
    });
  });
  return {grad_loc, grad_a, grad_c};
}

// wood.py, wood_sample: the cosine of an accepted proposal (P, M) under the envelope of kappa,
// 1 - w = 2bP/(M + bP), 1 + w = 2M/(M + bP) with b = (m-1)/(2 kappa + hypot(2 kappa, m-1)),
// rotated around loc. Backward: d(1-w)/db = -d(1+w)/db = 2PM/(M + bP)^2, db/dkappa = -2b/hypot
// = -b/(2h) with h = hypot/4 (envelope_b).
template <typename T>
inline void wood_cosines(T kappa, T p, T q, int64_t m, T& b, T& h, T& a, T& c) {
  b = envelope_b(kappa, m, h);
  const T denom = q + b * p;
  a = 2 * b * p / denom, c = 2 * q / denom;
}

torch::Tensor wood_sample(const torch::Tensor& loc, const torch::Tensor& kappa, const torch::Tensor& p,
                          const torch::Tensor& q, const torch::Tensor& v) {
  for (auto* t : {&loc, &kappa, &p, &q, &v}) check_cpu(*t, "wood_sample: every input");
  const int64_t n = kappa.numel(), m = loc.size(-1);
  auto z = torch::empty_like(v);
  AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "wood_sample", [&] {
    const scalar_t *l = loc.data_ptr<scalar_t>(), *k = kappa.data_ptr<scalar_t>(), *v_ = v.data_ptr<scalar_t>();
    const scalar_t *p_ = p.data_ptr<scalar_t>(), *q_ = q.data_ptr<scalar_t>();
    scalar_t* z_ = z.data_ptr<scalar_t>();
    for_each_row(n, [&](int64_t i) {
      scalar_t b, h, a, c;
      wood_cosines(k[i], p_[i], q_[i], m, b, h, a, c);
      rotate_row(l + i * m, a, c, v_ + i * m, z_ + i * m, m);
    });
  });
  return z;
}

std::tuple<torch::Tensor, torch::Tensor> wood_sample_backward(
    const torch::Tensor& grad_z, const torch::Tensor& loc, const torch::Tensor& kappa, const torch::Tensor& p,
    const torch::Tensor& q, const torch::Tensor& v) {
  for (auto* t : {&grad_z, &loc, &kappa, &p, &q, &v}) check_cpu(*t, "wood_sample_backward: every input");
  const int64_t n = kappa.numel(), m = loc.size(-1);
  auto grad_loc = torch::empty_like(loc), grad_kappa = torch::empty_like(kappa);
  AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "wood_sample_backward", [&] {
    const scalar_t *g = grad_z.data_ptr<scalar_t>(), *l = loc.data_ptr<scalar_t>(), *k = kappa.data_ptr<scalar_t>();
    const scalar_t *p_ = p.data_ptr<scalar_t>(), *q_ = q.data_ptr<scalar_t>(), *v_ = v.data_ptr<scalar_t>();
    scalar_t *gl = grad_loc.data_ptr<scalar_t>(), *gk = grad_kappa.data_ptr<scalar_t>();
    for_each_row(n, [&](int64_t i) {
      scalar_t b, h, a, c;
      wood_cosines(k[i], p_[i], q_[i], m, b, h, a, c);
      const auto [grad_a, grad_c] = rotate_row_backward(g + i * m, l + i * m, a, c, v_ + i * m, gl + i * m, m);
      const scalar_t denom = q_[i] + b * p_[i];
      gk[i] = (grad_a - grad_c) * (2 * p_[i] * q_[i] / (denom * denom)) * (-b / (2 * h));
    });
  });
  return {grad_loc, grad_kappa};
}


// special.py, _debye_log_sum for one element: log sum_k r^-k P_k((nu/r)^2), coef[j][k] (row
// stride `terms`) the coefficient of q^j in P_{k+1}(q), which is 0 for j > k + 1.
inline double debye_log_sum(double nu, double r, const double* coef, int64_t terms) {
  constexpr int64_t max_terms = 32;
  TORCH_CHECK(terms < max_terms, "debye_log_sum: at most ", max_terms - 1, " terms");
  const double t = 1 / r, q = (nu * t) * (nu * t);
  double q_powers[max_terms];
  q_powers[0] = 1;
  for (int64_t j = 1; j <= terms; ++j) q_powers[j] = q_powers[j - 1] * q;
  double sum = 0, t_power = 1;
  for (int64_t k = 0; k < terms; ++k) {
    double poly = coef[k];
    for (int64_t j = 1; j <= k + 1; ++j) poly += q_powers[j] * coef[j * terms + k];
    sum += (t_power *= t) * poly;
  }
  return std::log1p(sum);
}

// special.py, _bessel_terms followed by _Bessel.forward's exp, for float64 arguments:
// (log_ive_v or undefined, log_ive_over_power_v, R_{v+1}, 1 - R_{v+1}), one regime per element.
std::vector<torch::Tensor> bessel_terms(const torch::Tensor& x, const c10::optional<torch::Tensor>& v_tensor,
                                        double v_scalar, double r0, const torch::Tensor& coef,
                                        int64_t series_terms, bool with_log_ive) {
  check_cpu(x, "bessel_terms: x");
  check_cpu(coef, "bessel_terms: coef");
  TORCH_CHECK(x.scalar_type() == torch::kFloat64 && coef.scalar_type() == torch::kFloat64,
              "bessel_terms: x and coef must be float64");
  const double* v_ = nullptr;
  if (v_tensor) {
    check_cpu(*v_tensor, "bessel_terms: v");
    TORCH_CHECK(v_tensor->sizes() == x.sizes() && v_tensor->scalar_type() == torch::kFloat64,
                "bessel_terms: v must be a float64 tensor shaped like x");
    v_ = v_tensor->data_ptr<double>();
  }
  const int64_t n = x.numel(), terms = coef.size(1);
  auto log_ive = with_log_ive ? torch::empty_like(x) : torch::Tensor();
  auto log_over_power = torch::empty_like(x), ratio = torch::empty_like(x), complement = torch::empty_like(x);
  const double *x_ = x.data_ptr<double>(), *c = coef.data_ptr<double>();
  double* li = with_log_ive ? log_ive.data_ptr<double>() : nullptr;
  double *lp = log_over_power.data_ptr<double>(), *ra = ratio.data_ptr<double>(), *co = complement.data_ptr<double>();
  const double lgamma_scalar = std::lgamma(v_scalar + 1);
  for_each_row(n, [&](int64_t i) {
    const double v = v_ ? v_[i] : v_scalar, xi = x_[i], v1 = v + 1;
    double log_ratio;
    if (xi * xi + v * v >= r0 * r0) {  // Olver's uniform expansion
      const double r = std::hypot(xi, v), r1 = std::hypot(xi, v1);  // no overflow of x^2 above 1e154
      const double sum0 = debye_log_sum(v, r, c, terms), sum1 = debye_log_sum(v1, r1, c, terms);
      const double common = v * v / (r + xi) - 0.5 * std::log(2 * M_PI * r) + sum0;
      if (li) li[i] = common - v * std::asinh(v / xi);
      lp[i] = common - v * std::log(v + r);
      const double two_v1 = 2 * v + 1, r_sum = r1 + r;
      log_ratio = two_v1 / r_sum - std::asinh(v1 / xi) - v * std::asinh(two_v1 / (v1 * r + v * r1)) -
                  0.5 * std::log1p(two_v1 / (r_sum * r)) + (sum1 - sum0);
    } else {  // the power series, a sum of positive terms per order
      const double quarter_x2 = xi * xi / 4;
      double tail0 = 0, tail1 = 0, term0 = 1, term1 = 1;
      for (int64_t k = 1; k <= series_terms; ++k) {
        tail0 += (term0 *= quarter_x2 / (k * (v + k)));
        tail1 += (term1 *= quarter_x2 / (k * (v1 + k)));
      }
      const double log_tail0 = std::log1p(tail0), log_tail1 = std::log1p(tail1);
      lp[i] = log_tail0 - xi - (v * M_LN2 + (v_ ? std::lgamma(v1) : lgamma_scalar));
      if (li) li[i] = lp[i] + (v == 0 ? 0.0 : v * std::log(xi));
      log_ratio = std::log(xi / (2 * v1)) + log_tail1 - log_tail0;
    }
    ra[i] = std::exp(log_ratio);
    co[i] = -std::expm1(log_ratio);
  });
  return {log_ive, log_over_power, ratio, complement};
}

// special.py, _Bessel.backward: the gradient in x from the gradients of the four outputs (each
// optional), with d log I_v/dx = R + v/x, d log(I_v/x^v)/dx = -(1 - R), and the Riccati equation
// R' = (1 - R)(1 + R) - (2v + 1) R/x; at x = 0 the limits v/x -> inf (0 for v = 0) and
// R/x -> 1/(2v + 2).
torch::Tensor bessel_backward(const torch::Tensor& x, const c10::optional<torch::Tensor>& v_tensor, double v_scalar,
                              const torch::Tensor& ratio, const torch::Tensor& complement,
                              const c10::optional<torch::Tensor>& g_log_ive,
                              const c10::optional<torch::Tensor>& g_log_over_power,
                              const c10::optional<torch::Tensor>& g_ratio,
                              const c10::optional<torch::Tensor>& g_complement) {
  auto pointer = [&](const c10::optional<torch::Tensor>& t, const char* name) -> const double* {
    if (!t) return nullptr;
    check_cpu(*t, name);
    TORCH_CHECK(t->numel() == x.numel() && t->scalar_type() == torch::kFloat64, name, " must be float64 shaped like x");
    return t->data_ptr<double>();
  };
  const double *x_ = pointer(x, "bessel_backward: x"), *v_ = pointer(v_tensor, "bessel_backward: v");
  const double *ra = pointer(ratio, "bessel_backward: ratio"), *co = pointer(complement, "bessel_backward: complement");
  const double *gi = pointer(g_log_ive, "bessel_backward: g_log_ive");
  const double *gp = pointer(g_log_over_power, "bessel_backward: g_log_over_power");
  const double *gr = pointer(g_ratio, "bessel_backward: g_ratio"), *gc = pointer(g_complement, "bessel_backward: g_complement");
  auto grad = torch::empty_like(x);
  double* g = grad.data_ptr<double>();
  for_each_row(x.numel(), [&](int64_t i) {
    const double v = v_ ? v_[i] : v_scalar, xi = x_[i];
    const bool positive = xi > 0;
    const double safe_x = positive ? xi : 1.0;
    double total = 0;
    if (gi) total += gi[i] * ((positive ? v / safe_x : (v > 0 ? INFINITY : 0.0)) - co[i]);
    if (gp) total -= gp[i] * co[i];
    if (gr || gc) {
      const double r_over_x = positive ? ra[i] / safe_x : 1 / (2 * v + 2);
      const double d_ratio = co[i] * (1 + ra[i]) - (2 * v + 1) * r_over_x;
      if (gr) total += gr[i] * d_ratio;
      if (gc) total -= gc[i] * d_ratio;
    }
    g[i] = total;
  });
  return grad;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.def("first_accepted", &first_accepted);
  module.def("rotate_from_pole", &rotate_from_pole);
  module.def("rotate_from_pole_backward", &rotate_from_pole_backward);
  module.def("wood_sample", &wood_sample);
  module.def("wood_sample_backward", &wood_sample_backward);
  module.def("bessel_terms", &bessel_terms);
  module.def("bessel_backward", &bessel_backward);
}
