use kiln::nn::Linear;

#[derive(kiln::Module)]
struct Net {
    fc: Linear,
    lr: f32,
    names: Vec<String>,
}

fn main() {}
