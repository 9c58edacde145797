use kiln::network;

network! {
    pub struct Net {
        fc1: Linear(784 -> 10),
    }
}

fn main() {}
