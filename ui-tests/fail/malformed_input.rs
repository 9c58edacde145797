use kiln::network;

network! {
    pub struct A(input: 784) {
        fc: Linear(784 -> 10),
    }
}

network! {
    pub struct B(inptu: [784]) {
        fc: Linear(784 -> 10),
    }
}

network! {
    pub struct C(input: []) {
        fc: Linear(784 -> 10),
    }
}

network! {
    pub struct D(input: [1, 28.0, 0]) {
        fc: Linear(784 -> 10),
    }
}

network! {
    pub struct E([1, 28, 28]) {
        fc: Linear(784 -> 10),
    }
}

fn main() {}
