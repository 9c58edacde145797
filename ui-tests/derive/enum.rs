use kiln::nn::Linear;

#[derive(kiln::Module)]
enum Net {
    A(Linear),
    B(Linear),
}

fn main() {}
