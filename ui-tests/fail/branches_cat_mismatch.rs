// Branches concatenated along channels must end in the same height and
// width: the 5×5 branch has no padding. The error points at that branch.
use kiln::network;

network! {
    pub struct Inception(input: [192, 28, 28]) {
        branches {
            b1: { branch1x1: Conv2d(192 -> 64, kernel: 1) },
            b5: {
                branch5x5_1: Conv2d(192 -> 48, kernel: 1),
                relu,
                branch5x5_2: Conv2d(48 -> 64, kernel: 5),
            },
            pool: { avg_pool2d(3, stride: 1, padding: 1), branch_pool: Conv2d(192 -> 32, kernel: 1) },
        } -> cat,
        relu,
    }
}

network! {
    // And a branch that is not an image at all.
    pub struct Flat(input: [8, 4, 4]) {
        branches {
            { conv: Conv2d(8 -> 8, kernel: 1) },
            { flatten },
        } -> cat,
    }
}

fn main() {}
