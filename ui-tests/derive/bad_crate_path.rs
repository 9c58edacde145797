use kiln::nn::Linear;

// `crate = "..."` must hold a path (serde's `#[serde(crate = "...")]`).
#[derive(kiln::Module)]
#[module(crate = "not a path")]
struct Net {
    fc: Linear,
}

#[derive(kiln::Module)]
#[module(crate = "kiln", extra_repr = "1 + 2")]
struct Other {
    fc: Linear,
}

fn main() {}
