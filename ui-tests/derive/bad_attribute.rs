use kiln::nn::Linear;

#[derive(kiln::Module)]
struct Net {
    #[module(skipp)]
    fc: Linear,
    #[module(rename = "a.b")]
    fc2: Linear,
}

fn main() {}
