use kiln::nn::Linear;

struct Config {
    depth: usize,
}

#[derive(kiln::Module)]
struct Net {
    fc: Linear,
    config: Config,
}

fn main() {}
