//! [`LBFGS`]: limited-memory BFGS with an optional strong-Wolfe line
//! search, like `torch.optim.LBFGS`.

use crate::Tensor;

/// Limited-memory BFGS, like `torch.optim.LBFGS(params, lr=1, max_iter=20,
/// max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
/// history_size=100, line_search_fn=None)`.
///
/// Each [`step`](LBFGS::step) re-evaluates the objective several times,
/// so it takes a closure that clears the gradients, computes the loss,
/// calls `backward` and returns the loss, as in PyTorch. All parameters
/// form one flat vector (PyTorch's single group); the algorithm follows
/// PyTorch's line by line, computing in `f64` (parameters of other float
/// dtypes are converted on the way in and out).
///
/// ```
/// use kiln_runtime::Tensor;
/// use kiln_runtime::optim::LBFGS;
/// // Minimise (x - 3)² + (y + 1)².
/// let p = Tensor::from([0.0f64, 0.0]).requires_grad_(true);
/// let target = Tensor::from([3.0f64, -1.0]);
/// let mut opt = LBFGS::new(vec![p.shallow_clone()]).line_search_strong_wolfe();
/// opt.step(&mut || {
///     p.set_grad(None);
///     let d = &p - &target;
///     let loss = (&d * &d).sum();
///     loss.backward();
///     loss
/// });
/// let v = p.to_vec::<f64>();
/// assert!((v[0] - 3.0).abs() < 1e-6 && (v[1] + 1.0).abs() < 1e-6);
/// ```
pub struct LBFGS {
    params: Vec<Tensor>,
    /// Step size (default 1).
    pub lr: f64,
    /// Most iterations per `step` (default 20).
    pub max_iter: usize,
    /// Most closure evaluations per `step` (default `max_iter · 5 / 4`).
    pub max_eval: usize,
    /// Stop when every gradient entry is at most this (default 1e-7).
    pub tolerance_grad: f64,
    /// Stop when the loss or the step changes less (default 1e-9).
    pub tolerance_change: f64,
    /// Curvature pairs kept (default 100).
    pub history_size: usize,
    /// Use the strong-Wolfe line search (PyTorch's
    /// `line_search_fn="strong_wolfe"`); otherwise fixed steps of `lr`.
    pub strong_wolfe: bool,
    // State, as PyTorch's `state[params[0]]`.
    func_evals: usize,
    n_iter: usize,
    d: Vec<f64>,
    t: f64,
    old_dirs: Vec<Vec<f64>>,
    old_stps: Vec<Vec<f64>>,
    ro: Vec<f64>,
    h_diag: f64,
    prev_flat_grad: Option<Vec<f64>>,
    prev_loss: f64,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn abs_max(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, x| m.max(x.abs()))
}

impl LBFGS {
    /// L-BFGS over `params` with PyTorch's defaults.
    pub fn new(params: Vec<Tensor>) -> LBFGS {
        LBFGS {
            params,
            lr: 1.0,
            max_iter: 20,
            max_eval: 25,
            tolerance_grad: 1e-7,
            tolerance_change: 1e-9,
            history_size: 100,
            strong_wolfe: false,
            func_evals: 0,
            n_iter: 0,
            d: Vec::new(),
            t: 0.0,
            old_dirs: Vec::new(),
            old_stps: Vec::new(),
            ro: Vec::new(),
            h_diag: 1.0,
            prev_flat_grad: None,
            prev_loss: 0.0,
        }
    }

    setters! {
        /// Sets the step size.
        lr: f64 => assert!(lr >= 0.0, "LBFGS: invalid learning rate {lr}");
    }

    /// Sets `max_iter` (and `max_eval` to PyTorch's default for it,
    /// `max_iter · 5 / 4`, unless set afterwards).
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self.max_eval = n * 5 / 4;
        self
    }

    setters! {
        /// Sets `max_eval`.
        max_eval: usize;
        /// Sets `tolerance_grad`.
        tolerance_grad: f64;
        /// Sets `tolerance_change`.
        tolerance_change: f64;
        /// Sets `history_size`.
        history_size: usize;
    }

    /// Uses the strong-Wolfe line search.
    pub fn line_search_strong_wolfe(mut self) -> Self {
        self.strong_wolfe = true;
        self
    }

    /// The parameters.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// Closure evaluations so far (PyTorch's `state["func_evals"]`).
    pub fn func_evals(&self) -> usize {
        self.func_evals
    }

    /// Iterations so far (PyTorch's `state["n_iter"]`).
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    /// Clears every parameter's gradient.
    pub fn zero_grad(&self) {
        for p in &self.params {
            p.set_grad(None);
        }
    }

    fn flat_params(&self) -> Vec<f64> {
        self.params.iter().flat_map(|p| p.to_vec::<f64>()).collect()
    }

    fn flat_grad(&self) -> Vec<f64> {
        self.params
            .iter()
            .flat_map(|p| match p.grad() {
                Some(g) => g.to_vec::<f64>(),
                None => vec![0.0; p.numel()],
            })
            .collect()
    }

    fn set_params(&self, x: &[f64]) {
        let mut offset = 0;
        crate::autograd::no_grad(|| {
            for p in &self.params {
                let n = p.numel();
                let v = Tensor::from_vec(x[offset..offset + n].to_vec(), p.shape().to_vec())
                    .to_dtype(p.dtype())
                    .to_device(p.device());
                p.copy_(&v);
                offset += n;
            }
        });
    }

    /// `params += step · d`.
    fn add_grad(&self, step: f64, d: &[f64]) {
        let x: Vec<f64> = self
            .flat_params()
            .iter()
            .zip(d)
            .map(|(p, d)| p + step * d)
            .collect();
        self.set_params(&x);
    }

    /// The loss and gradient at `x + t·d`; the parameters go back to `x`.
    fn directional_evaluate(
        &self,
        closure: &mut dyn FnMut() -> Tensor,
        x: &[f64],
        t: f64,
        d: &[f64],
    ) -> (f64, Vec<f64>) {
        self.add_grad(t, d);
        let loss = closure().item();
        let g = self.flat_grad();
        self.set_params(x);
        (loss, g)
    }

    /// One optimisation step (up to `max_iter` iterations); returns the
    /// loss the closure reported at the start, like PyTorch's `step`.
    pub fn step(&mut self, closure: &mut dyn FnMut() -> Tensor) -> f64 {
        if self.params.is_empty() {
            return closure().item();
        }
        let orig_loss = closure().item();
        let mut loss = orig_loss;
        let mut current_evals = 1;
        self.func_evals += 1;
        let mut flat_grad = self.flat_grad();
        if abs_max(&flat_grad) <= self.tolerance_grad {
            return orig_loss;
        }
        let mut n_iter = 0;
        while n_iter < self.max_iter {
            n_iter += 1;
            self.n_iter += 1;
            if self.n_iter == 1 {
                self.d = flat_grad.iter().map(|g| -g).collect();
                self.old_dirs.clear();
                self.old_stps.clear();
                self.ro.clear();
                self.h_diag = 1.0;
            } else {
                let prev = self.prev_flat_grad.as_ref().expect("set after iteration 1");
                let y: Vec<f64> = flat_grad.iter().zip(prev).map(|(a, b)| a - b).collect();
                let s: Vec<f64> = self.d.iter().map(|d| d * self.t).collect();
                let ys = dot(&y, &s);
                if ys > 1e-10 {
                    if self.old_dirs.len() == self.history_size {
                        self.old_dirs.remove(0);
                        self.old_stps.remove(0);
                        self.ro.remove(0);
                    }
                    self.h_diag = ys / dot(&y, &y);
                    self.old_dirs.push(y);
                    self.old_stps.push(s);
                    self.ro.push(1.0 / ys);
                }
                // Two-loop recursion for H⁻¹·(−g).
                let num_old = self.old_dirs.len();
                let mut al = vec![0.0; num_old];
                let mut q: Vec<f64> = flat_grad.iter().map(|g| -g).collect();
                for i in (0..num_old).rev() {
                    al[i] = dot(&self.old_stps[i], &q) * self.ro[i];
                    for (qj, yj) in q.iter_mut().zip(&self.old_dirs[i]) {
                        *qj += -al[i] * yj;
                    }
                }
                let mut r: Vec<f64> = q.iter().map(|q| q * self.h_diag).collect();
                let pairs = self.old_dirs.iter().zip(&self.old_stps);
                for ((y, s), (&a, &rho)) in pairs.zip(al.iter().zip(&self.ro)) {
                    let be_i = dot(y, &r) * rho;
                    for (rj, sj) in r.iter_mut().zip(s) {
                        *rj += (a - be_i) * sj;
                    }
                }
                self.d = r;
            }
            self.prev_flat_grad = Some(flat_grad.clone());
            self.prev_loss = loss;
            self.t = if self.n_iter == 1 {
                let l1: f64 = flat_grad.iter().map(|g| g.abs()).sum();
                (1.0f64).min(1.0 / l1) * self.lr
            } else {
                self.lr
            };
            let gtd = dot(&flat_grad, &self.d);
            if gtd > -self.tolerance_change {
                break;
            }
            let mut ls_func_evals = 0;
            let opt_cond;
            if self.strong_wolfe {
                let x_init = self.flat_params();
                let d = self.d.clone();
                let max_ls = self.max_eval.saturating_sub(current_evals);
                let (f_new, g_new, t, evals) = {
                    let mut obj = |t: f64| self.directional_evaluate(closure, &x_init, t, &d);
                    strong_wolfe(
                        &mut obj,
                        self.t,
                        &d,
                        loss,
                        &flat_grad,
                        gtd,
                        1e-4,
                        0.9,
                        self.tolerance_change,
                        max_ls,
                    )
                };
                loss = f_new;
                flat_grad = g_new;
                self.t = t;
                ls_func_evals = evals;
                self.add_grad(self.t, &d);
                opt_cond = abs_max(&flat_grad) <= self.tolerance_grad;
            } else {
                let d = self.d.clone();
                self.add_grad(self.t, &d);
                if n_iter != self.max_iter {
                    loss = closure().item();
                    flat_grad = self.flat_grad();
                    opt_cond = abs_max(&flat_grad) <= self.tolerance_grad;
                    ls_func_evals = 1;
                } else {
                    opt_cond = false;
                }
            }
            current_evals += ls_func_evals;
            self.func_evals += ls_func_evals;
            if n_iter == self.max_iter || current_evals >= self.max_eval || opt_cond {
                break;
            }
            if abs_max(&self.d) * self.t.abs() <= self.tolerance_change {
                break;
            }
            if (loss - self.prev_loss).abs() < self.tolerance_change {
                break;
            }
        }
        orig_loss
    }
}

/// The minimiser of the cubic through `(x1, f1, g1)` and `(x2, f2, g2)`,
/// clamped to `bounds` (default: between the points).
fn cubic_interpolate(
    x1: f64,
    f1: f64,
    g1: f64,
    x2: f64,
    f2: f64,
    g2: f64,
    bounds: Option<(f64, f64)>,
) -> f64 {
    let (lo, hi) = bounds.unwrap_or(if x1 <= x2 { (x1, x2) } else { (x2, x1) });
    let d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    let d2_square = d1 * d1 - g1 * g2;
    if d2_square >= 0.0 {
        let d2 = d2_square.sqrt();
        let min_pos = if x1 <= x2 {
            x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        } else {
            x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        };
        min_pos.max(lo).min(hi)
    } else {
        (lo + hi) / 2.0
    }
}

/// PyTorch's `_strong_wolfe`: a step `t` along `d` satisfying the strong
/// Wolfe conditions, by bracketing then zooming with cubic interpolation.
/// Returns `(loss, gradient, t, evaluations)`.
#[allow(clippy::too_many_arguments)]
fn strong_wolfe(
    obj: &mut dyn FnMut(f64) -> (f64, Vec<f64>),
    mut t: f64,
    d: &[f64],
    f: f64,
    g: &[f64],
    gtd: f64,
    c1: f64,
    c2: f64,
    tolerance_change: f64,
    max_ls: usize,
) -> (f64, Vec<f64>, f64, usize) {
    let d_norm = abs_max(d);
    let (mut f_new, mut g_new) = obj(t);
    let mut evals = 1;
    let mut gtd_new = dot(&g_new, d);
    let (mut t_prev, mut f_prev, mut g_prev, mut gtd_prev) = (0.0, f, g.to_vec(), gtd);
    let mut done = false;
    let mut ls_iter = 0;
    // Brackets: [t], [f], [g], [gtd] of one or two points.
    let mut bt: Vec<f64> = Vec::new();
    let mut bf: Vec<f64> = Vec::new();
    let mut bg: Vec<Vec<f64>> = Vec::new();
    let mut bgtd: Vec<f64> = Vec::new();
    while ls_iter < max_ls {
        if f_new > f + c1 * t * gtd || (ls_iter > 1 && f_new >= f_prev) {
            bt = vec![t_prev, t];
            bf = vec![f_prev, f_new];
            bg = vec![g_prev.clone(), g_new.clone()];
            bgtd = vec![gtd_prev, gtd_new];
            break;
        }
        if gtd_new.abs() <= -c2 * gtd {
            bt = vec![t];
            bf = vec![f_new];
            bg = vec![g_new.clone()];
            done = true;
            break;
        }
        if gtd_new >= 0.0 {
            bt = vec![t_prev, t];
            bf = vec![f_prev, f_new];
            bg = vec![g_prev.clone(), g_new.clone()];
            bgtd = vec![gtd_prev, gtd_new];
            break;
        }
        let min_step = t + 0.01 * (t - t_prev);
        let max_step = t * 10.0;
        let tmp = t;
        t = cubic_interpolate(
            t_prev,
            f_prev,
            gtd_prev,
            t,
            f_new,
            gtd_new,
            Some((min_step, max_step)),
        );
        t_prev = tmp;
        f_prev = f_new;
        g_prev = g_new.clone();
        gtd_prev = gtd_new;
        (f_new, g_new) = obj(t);
        evals += 1;
        gtd_new = dot(&g_new, d);
        ls_iter += 1;
    }
    if ls_iter == max_ls {
        bt = vec![0.0, t];
        bf = vec![f, f_new];
        bg = vec![g.to_vec(), g_new.clone()];
    }
    let mut insuf_progress = false;
    let (mut low, mut high) = if bf[0] <= bf[bf.len() - 1] {
        (0, 1)
    } else {
        (1, 0)
    };
    while !done && ls_iter < max_ls {
        if (bt[1] - bt[0]).abs() * d_norm < tolerance_change {
            break;
        }
        t = cubic_interpolate(bt[0], bf[0], bgtd[0], bt[1], bf[1], bgtd[1], None);
        let (bmax, bmin) = (bt[0].max(bt[1]), bt[0].min(bt[1]));
        let eps = 0.1 * (bmax - bmin);
        if (bmax - t).min(t - bmin) < eps {
            if insuf_progress || t >= bmax || t <= bmin {
                t = if (t - bmax).abs() < (t - bmin).abs() {
                    bmax - eps
                } else {
                    bmin + eps
                };
                insuf_progress = false;
            } else {
                insuf_progress = true;
            }
        } else {
            insuf_progress = false;
        }
        (f_new, g_new) = obj(t);
        evals += 1;
        gtd_new = dot(&g_new, d);
        ls_iter += 1;
        if f_new > f + c1 * t * gtd || f_new >= bf[low] {
            bt[high] = t;
            bf[high] = f_new;
            bg[high] = g_new.clone();
            bgtd[high] = gtd_new;
            (low, high) = if bf[0] <= bf[1] { (0, 1) } else { (1, 0) };
        } else {
            if gtd_new.abs() <= -c2 * gtd {
                done = true;
            } else if gtd_new * (bt[high] - bt[low]) >= 0.0 {
                bt[high] = bt[low];
                bf[high] = bf[low];
                bg[high] = bg[low].clone();
                bgtd[high] = bgtd[low];
            }
            bt[low] = t;
            bf[low] = f_new;
            bg[low] = g_new.clone();
            bgtd[low] = gtd_new;
        }
    }
    let low = low.min(bt.len() - 1);
    (bf[low], bg[low].clone(), bt[low], evals)
}
