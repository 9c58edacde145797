use kiln::network;

network! {
    pub struct Net<'a, T, const H: usize>(input: [784]) {
        fc: Linear(784 -> H),
    }
}

fn main() {}
