//! torchvision's classification models, declared with `network!`: their
//! `state_dict` keys, order and shapes are torchvision's, so torchvision
//! weights load strictly, by key, with no adapter. Also [`LeNet5`], the
//! MNIST model the examples train, with the key names of the usual
//! PyTorch LeNet.
//!
//! The ResNets take images of any size (`input: [3, dyn H, dyn W]`): the
//! channels of every block and stage are checked while compiling, the
//! spatial sizes when the forward runs. The VGGs are declared for 224×224
//! images, as torchvision trains them, and are checked entirely while
//! compiling.
//!
//! ```
//! use kiln::models::ResNet18;
//! use kiln::nn::Module;
//! let net = ResNet18::<10>::new(&kiln::Device::Cpu);
//! let keys: Vec<String> = net.state_dict().keys().map(String::from).collect();
//! assert_eq!(keys[0], "conv1.weight");
//! assert!(keys.contains(&"layer2.0.downsample.0.weight".to_owned()));
//! ```

mod lenet;
mod resnet;
mod vgg;

pub use lenet::LeNet5;
pub use resnet::{BasicBlock, Bottleneck, ResNet18, ResNet34, ResNet50};
pub use vgg::{Vgg11, Vgg11Bn, Vgg16, Vgg16Bn};
