//! The test device, [`Device::Test`]: a second
//! backend that is not the CPU's but runs anywhere.
//!
//! Its tensors live in host memory of their own storage type
//! ([`TestStorage`]), so nothing treats them as CPU tensors: every op on
//! them takes the device-generic path a GPU tensor takes (the same-device
//! checks, `backend::of`, transfers with `.to(device)`, reading back for
//! `to_vec`). Each primitive copies its inputs into CPU tensors, runs the
//! CPU backend's kernel and copies the result back into test storage, so
//! results equal the CPU's exactly and any op that bypasses the backend
//! interface panics instead of silently reading host memory. The golden
//! and gradcheck suites run every case on it. It is slow (every
//! primitive copies) and meant for tests only.

use super::cpu::CpuBackend;
use super::{
    Backend, BatchNormArgs, BatchNormSaved, ClassLoss, CompareFn, Conv2dParams, Grads3, Operand,
    Pool2dParams, PoolIndices, UnaryOp,
};
use crate::loss::PointLoss;
use crate::ops::binary::BinaryFns;
use crate::ops::inplace::InplaceFns;
use crate::storage::{CpuStorage, Storage};
use crate::{DType, Device, Layout, Tensor};

/// The elements of a test-device tensor: host memory that only the test
/// backend reads.
#[derive(Clone, Debug)]
pub struct TestStorage {
    ordinal: usize,
    data: CpuStorage,
}

impl TestStorage {
    /// The device's ordinal (`test:N`).
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Number of elements held.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when no element is held.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// `t` (on a test device) as a CPU tensor over a copy of its storage,
/// with the same layout.
fn cpu(t: &Tensor) -> Tensor {
    let g = t.read_storage();
    match &*g {
        Storage::Test(s) => Tensor::from_storage(Storage::Cpu(s.data.clone()), t.layout().clone()),
        _ => panic!("test backend: {} is not on a test device", t.device()),
    }
}

/// A CPU result moved to the test device `ordinal` (no autograd).
fn back(t: Tensor, ordinal: usize) -> Tensor {
    let data = t.read_storage().cpu("test backend").clone();
    Tensor::from_storage(
        Storage::Test(TestStorage { ordinal, data }),
        t.layout().clone(),
    )
}

/// Writes the storage of the CPU copy `from` back into the test tensor `to`.
fn write_back(to: &Tensor, from: &Tensor) {
    let data = from.read_storage().cpu("test backend").clone();
    let mut g = to.write_storage();
    match &mut *g {
        Storage::Test(s) => s.data = data,
        _ => panic!("test backend: {} is not on a test device", to.device()),
    }
}

fn ord(t: &Tensor) -> usize {
    match t.device() {
        Device::Test(i) => i,
        d => panic!("test backend: {d} is not a test device"),
    }
}

/// Copies between the CPU and test devices.
pub(crate) fn transfer(t: &Tensor, to: Device) -> Tensor {
    match (t.device(), to) {
        (Device::Cpu, Device::Test(i)) => {
            let data = t.read_storage().cpu("to").gather(t.layout());
            Tensor::from_storage(
                Storage::Test(TestStorage { ordinal: i, data }),
                Layout::contiguous(t.shape()),
            )
        }
        (Device::Test(_), Device::Cpu) => CpuBackend.deep_copy(&cpu(t)),
        (Device::Test(_), Device::Test(_)) => transfer(&transfer(t, Device::Cpu), to),
        (from, to) => panic!("to: the test backend cannot copy from {from} to {to}"),
    }
}

/// An argument of a [`Backend`] method as the CPU backend takes it: a
/// test-device tensor becomes a CPU copy (noting its device's ordinal),
/// everything else passes through.
trait ToCpu {
    /// The argument held on the host.
    type Held;
    /// Copies the tensors in `self` to the CPU; `ordinal` is set to the
    /// first one's test device.
    fn to_cpu(self, ordinal: &mut Option<usize>) -> Self::Held;
}

/// A held argument lent to the CPU backend's method, in the form the
/// method takes.
trait Lend<'a> {
    /// The borrowed form.
    type Out;
    /// Borrows the held argument.
    fn lend(&'a self) -> Self::Out;
}

/// A CPU backend's result moved to the test device `ordinal`.
trait ToTest {
    /// The result with every tensor in test storage.
    fn to_test(self, ordinal: usize) -> Self;
}

impl ToCpu for &Tensor {
    type Held = Tensor;
    fn to_cpu(self, ordinal: &mut Option<usize>) -> Tensor {
        ordinal.get_or_insert(ord(self));
        cpu(self)
    }
}

impl<'a> Lend<'a> for Tensor {
    type Out = &'a Tensor;
    fn lend(&'a self) -> &'a Tensor {
        self
    }
}

impl ToCpu for Option<&Tensor> {
    type Held = Option<Tensor>;
    fn to_cpu(self, ordinal: &mut Option<usize>) -> Option<Tensor> {
        self.map(|t| t.to_cpu(ordinal))
    }
}

impl<'a> Lend<'a> for Option<Tensor> {
    type Out = Option<&'a Tensor>;
    fn lend(&'a self) -> Option<&'a Tensor> {
        self.as_ref()
    }
}

impl<'l> ToCpu for Operand<'l> {
    type Held = (Tensor, &'l Layout);
    fn to_cpu(self, ordinal: &mut Option<usize>) -> Self::Held {
        (self.0.to_cpu(ordinal), self.1)
    }
}

impl<'a, 'l: 'a> Lend<'a> for (Tensor, &'l Layout) {
    type Out = Operand<'a>;
    fn lend(&'a self) -> Operand<'a> {
        (&self.0, self.1)
    }
}

impl ToCpu for &[Tensor] {
    type Held = Vec<Tensor>;
    fn to_cpu(self, ordinal: &mut Option<usize>) -> Vec<Tensor> {
        self.iter().map(|t| t.to_cpu(ordinal)).collect()
    }
}

impl<'a> Lend<'a> for Vec<Tensor> {
    type Out = &'a [Tensor];
    fn lend(&'a self) -> &'a [Tensor] {
        self
    }
}

impl ToCpu for &ClassLoss {
    type Held = ClassLoss;
    fn to_cpu(self, ordinal: &mut Option<usize>) -> ClassLoss {
        ClassLoss {
            target: self.target.to_cpu(ordinal),
            weight: self.weight.as_ref().to_cpu(ordinal),
            ..*self
        }
    }
}

impl ToCpu for &BatchNormSaved {
    type Held = BatchNormSaved;
    fn to_cpu(self, ordinal: &mut Option<usize>) -> BatchNormSaved {
        BatchNormSaved {
            mean: self.mean.to_cpu(ordinal),
            invstd: self.invstd.to_cpu(ordinal),
            training: self.training,
        }
    }
}

/// Held structs are lent by reference.
macro_rules! lend_by_ref {
    ($($t:ty),*) => {$(
        impl<'a> Lend<'a> for $t {
            type Out = &'a $t;
            fn lend(&'a self) -> &'a $t {
                self
            }
        }
    )*};
}
lend_by_ref!(ClassLoss, BatchNormSaved);

/// Arguments without tensors pass through unchanged: values, and
/// references (`ref T`).
macro_rules! pass_through {
    ($($t:ty),*; $(ref $r:ty),*) => {
        $(
            impl ToCpu for $t {
                type Held = $t;
                fn to_cpu(self, _: &mut Option<usize>) -> $t {
                    self
                }
            }
            impl<'a> Lend<'a> for $t {
                type Out = $t;
                fn lend(&'a self) -> $t {
                    *self
                }
            }
        )*
        $(
            impl<'r> ToCpu for &'r $r {
                type Held = &'r $r;
                fn to_cpu(self, _: &mut Option<usize>) -> &'r $r {
                    self
                }
            }
            impl<'a, 'r> Lend<'a> for &'r $r {
                type Out = &'r $r;
                fn lend(&'a self) -> &'r $r {
                    self
                }
            }
        )*
    };
}
pass_through!(usize, bool, f64, DType, UnaryOp, PointLoss, CompareFn, [usize; 2], [bool; 3];
    ref str, ref [usize], ref [bool], ref Layout, ref BinaryFns, ref Conv2dParams, ref Pool2dParams,
    ref PoolIndices);

impl ToTest for Tensor {
    fn to_test(self, ordinal: usize) -> Tensor {
        back(self, ordinal)
    }
}

impl ToTest for PoolIndices {
    fn to_test(self, _: usize) -> PoolIndices {
        // Host indices: the CPU backward reads them as they are.
        self
    }
}

impl<T: ToTest> ToTest for Option<T> {
    fn to_test(self, ordinal: usize) -> Self {
        self.map(|t| t.to_test(ordinal))
    }
}

impl<A: ToTest, B: ToTest> ToTest for (A, B) {
    fn to_test(self, ordinal: usize) -> Self {
        (self.0.to_test(ordinal), self.1.to_test(ordinal))
    }
}

impl<A: ToTest, B: ToTest, C: ToTest> ToTest for (A, B, C) {
    fn to_test(self, ordinal: usize) -> Self {
        let (a, b, c) = self;
        (a.to_test(ordinal), b.to_test(ordinal), c.to_test(ordinal))
    }
}

/// [`Backend`] methods that copy their tensor arguments to the CPU, run
/// the CPU backend's method of the same name and move the result to the
/// test device of the first tensor argument.
macro_rules! forward_to_cpu {
    ($(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {$(
        fn $name(&self $(, $arg: $ty)*) -> $ret {
            let mut ordinal = None;
            $(let $arg = ToCpu::to_cpu($arg, &mut ordinal);)*
            let out = CpuBackend.$name($(Lend::lend(&$arg)),*);
            let ordinal = ordinal.expect(concat!(stringify!($name), ": no test-device tensor"));
            ToTest::to_test(out, ordinal)
        }
    )*};
}

/// The test device's implementation of [`Backend`]: the CPU's kernels
/// on copies.
pub(crate) struct TestBackend;

impl Backend for TestBackend {
    with_forwarded!(forward_to_cpu);

    fn full(&self, shape: &[usize], value: f64, dtype: DType, device: Device) -> Tensor {
        let Device::Test(i) = device else {
            panic!("full: {device} is not a test device");
        };
        back(CpuBackend.full(shape, value, dtype, Device::Cpu), i)
    }

    fn fill(&self, t: &Tensor, value: f64) {
        let c = cpu(t);
        CpuBackend.fill(&c, value);
        write_back(t, &c);
    }

    fn binary_inplace(&self, op: &str, fns: InplaceFns, t: &Tensor, other: &Tensor, ls: &Layout) {
        let c = cpu(t);
        CpuBackend.binary_inplace(op, fns, &c, &cpu(other), ls);
        write_back(t, &c);
    }

    fn batch_norm(&self, x: &Tensor, a: &BatchNormArgs) -> (Tensor, BatchNormSaved) {
        let mut ordinal = None;
        let (w, b) = (a.weight.to_cpu(&mut ordinal), a.bias.to_cpu(&mut ordinal));
        let rm = a.running_mean.to_cpu(&mut ordinal);
        let rv = a.running_var.to_cpu(&mut ordinal);
        let args = BatchNormArgs {
            weight: w.as_ref(),
            bias: b.as_ref(),
            running_mean: rm.as_ref(),
            running_var: rv.as_ref(),
            ..*a
        };
        let (y, saved) = CpuBackend.batch_norm(&cpu(x), &args);
        // The CPU updated copies of the running statistics.
        for (orig, copy) in [(a.running_mean, &rm), (a.running_var, &rv)] {
            if let (Some(o), Some(c)) = (orig, copy) {
                write_back(o, c);
            }
        }
        let o = ord(x);
        let saved = BatchNormSaved {
            mean: back(saved.mean, o),
            invstd: back(saved.invstd, o),
            training: saved.training,
        };
        (back(y, o), saved)
    }
}
