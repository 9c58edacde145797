use kiln_kernels::cpu::conv::*;
fn main() {
    let which = std::env::args().nth(1).unwrap();
    let (in_shape, w_shape, p) = if which.starts_with('1') {
        (
            [64usize, 1, 28, 28],
            [6usize, 1, 5, 5],
            Conv2dParams {
                padding: [2, 2],
                ..Default::default()
            },
        )
    } else {
        ([64, 6, 14, 14], [16, 6, 5, 5], Conv2dParams::default())
    };
    let x = vec![0.5f32; in_shape.iter().product()];
    let w = vec![0.25f32; w_shape.iter().product()];
    let y = conv2d_forward(&x, in_shape, &w, w_shape, None, &p);
    let os = [
        64,
        w_shape[0],
        if which.starts_with('1') { 28 } else { 10 },
        if which.starts_with('1') { 28 } else { 10 },
    ];
    let t = std::time::Instant::now();
    for _ in 0..3000 {
        match &which[1..] {
            "f" => {
                std::hint::black_box(conv2d_forward(&x, in_shape, &w, w_shape, None, &p));
            }
            "i" => {
                std::hint::black_box(conv2d_backward_input(&y, os, &w, w_shape, in_shape, &p));
            }
            _ => {
                std::hint::black_box(conv2d_backward_weight(&y, os, &x, in_shape, w_shape, &p));
            }
        }
    }
    println!("{} us", t.elapsed().as_secs_f64() / 3000.0 * 1e6);
}
