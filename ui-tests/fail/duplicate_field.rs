use kiln::network;

network! {
    pub struct Net(input: [784]) {
        fc: Linear(784 -> 128),
        relu,
        fc: Linear(128 -> 10),
    }
}

network! {
    pub struct Taps(input: [784]) {
        fc1: Linear(784 -> 128),
        relu -> hidden,
        fc2: Linear(128 -> 10) -> hidden,
    }
}

fn main() {}
