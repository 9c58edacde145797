use kiln_kernels::cpu::pool::*;
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
fn main() {
    let s = [64usize, 6, 28, 28];
    let x: Vec<f32> = (0..s.iter().product::<usize>())
        .map(|i| ((i * 7919) % 1000) as f32)
        .collect();
    let (y, idx, os) = max_pool2d_forward(&x, s, [2, 2], [2, 2], [0, 0], [1, 1], false);
    let mut best = [f64::MAX; 2];
    for _ in 0..20 {
        let t = cpu();
        for _ in 0..200 {
            std::hint::black_box(max_pool2d_forward(
                &x,
                s,
                [2, 2],
                [2, 2],
                [0, 0],
                [1, 1],
                false,
            ));
        }
        best[0] = best[0].min((cpu() - t) / 200.0 * 1e6);
        let t = cpu();
        for _ in 0..200 {
            std::hint::black_box(max_pool2d_backward(&y, os, &idx, s));
        }
        best[1] = best[1].min((cpu() - t) / 200.0 * 1e6);
    }
    println!("fwd {:.1} us  bwd {:.1} us", best[0], best[1]);
}
