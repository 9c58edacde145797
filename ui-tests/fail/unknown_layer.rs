use kiln::network;

network! {
    pub struct Net(input: [1, 28, 28]) {
        conv1: Conv2D(1 -> 6, kernel: 5),
        relu6,
        maxpool2d(2),
        act: Relu,
        enc: Encoder(32),
        Flaten,
    }
}

fn main() {}
