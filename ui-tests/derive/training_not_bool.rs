use kiln::nn::Linear;

#[derive(kiln::Module)]
struct Net {
    fc: Linear,
    #[module(training)]
    mode: u8,
}

fn main() {}
