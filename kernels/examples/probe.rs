use kiln_kernels::cpu::conv::*;
#[repr(C)]
struct Timespec {
    s: i64,
    ns: i64,
}
unsafe extern "C" {
    fn clock_gettime(clk: i32, ts: *mut Timespec) -> i32;
}
fn cpu() -> f64 {
    let mut t = Timespec { s: 0, ns: 0 };
    unsafe { clock_gettime(2, &mut t) };
    t.s as f64 + t.ns as f64 * 1e-9
}
fn t<F: FnMut()>(mut f: F) -> f64 {
    for _ in 0..20 {
        f();
    }
    let mut best = f64::MAX;
    for _ in 0..10 {
        let n = 50;
        let s = cpu();
        for _ in 0..n {
            f();
        }
        best = best.min((cpu() - s) / n as f64 * 1e6)
    }
    best
}
fn main() {
    for l in 1..=2 {
        let (in_shape, w_shape, p, os) = if l == 1 {
            (
                [64usize, 1, 28, 28],
                [6usize, 1, 5, 5],
                Conv2dParams {
                    padding: [2, 2],
                    ..Default::default()
                },
                [64usize, 6, 28, 28],
            )
        } else {
            (
                [64, 6, 14, 14],
                [16, 6, 5, 5],
                Conv2dParams::default(),
                [64, 16, 10, 10],
            )
        };
        let x = vec![0.5f32; in_shape.iter().product()];
        let w = vec![0.25f32; w_shape.iter().product()];
        let y = conv2d_forward(&x, in_shape, &w, w_shape, None, &p);
        let f = t(|| {
            std::hint::black_box(conv2d_forward(&x, in_shape, &w, w_shape, None, &p));
        });
        let i = t(|| {
            std::hint::black_box(conv2d_backward_input(&y, os, &w, w_shape, in_shape, &p));
        });
        let wg = t(|| {
            std::hint::black_box(conv2d_backward_weight(&y, os, &x, in_shape, w_shape, &p));
        });
        println!("conv{l} cpu-us fwd {f:.1} bin {i:.1} bw {wg:.1}");
    }
}
