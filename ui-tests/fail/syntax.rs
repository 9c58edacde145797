use kiln::network;

network! {
    pub struct Net(input: [784]) {
        fc1: Linear(784 -> 128)
        relu,
        fc2: Linear(128 -> 10),
        relu ->,
    }
}

network! {
    pub enum NotAStruct {}
}

network! {
    pub struct Empty(input: [784]) {}
}

fn main() {}
