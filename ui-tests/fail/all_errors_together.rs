// Every error of a declaration is reported at once, and uses of the type
// produce no further errors.
use kiln::network;

network! {
    /// A broken network.
    pub struct Net(input: [1, 28, 28]) {
        conv1: Conv2d(3 -> 6, kernel: 5),
        relu,
        conv2: Conv2d(6 -> 16, kernel: 5, strde: 2),
        max_pool2d(2),
        flatten,
        fc1: Linear(16 * 5 * 5 -> 120),
        fc2: Linear(100 -> 10),
    }
}

fn main() {
    let net = Net::new(&());
    let _y = net.forward(&[0.0f32; 4]);
}
