//! [`UnaryOp`]: an elementwise op with its scalar parameters, so that a
//! device backend can run it (the CPU path uses closures instead).

/// An elementwise unary op, named like its PyTorch function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `e^x`
    Exp,
    /// natural log
    Log,
    /// base-2 log
    Log2,
    /// `ln(1 + x)`
    Log1p,
    /// `e^x - 1`
    Expm1,
    /// square root
    Sqrt,
    /// `1 / sqrt(x)`
    Rsqrt,
    /// absolute value
    Abs,
    /// -1, 0 or 1
    Sign,
    /// round down
    Floor,
    /// round up
    Ceil,
    /// round half to even
    Round,
    /// round toward zero
    Trunc,
    /// sine
    Sin,
    /// cosine
    Cos,
    /// tangent
    Tan,
    /// `1 / x`
    Reciprocal,
    /// `x * x`
    Square,
    /// `max(x, 0)`
    Relu,
    /// logistic sigmoid
    Sigmoid,
    /// hyperbolic tangent
    Tanh,
    /// error function
    Erf,
    /// GELU (erf form)
    Gelu,
    /// GELU (tanh approximation)
    GeluTanh,
    /// `x * sigmoid(x)`
    Silu,
    /// `x + s`
    AddScalar(f64),
    /// `x * s`
    MulScalar(f64),
    /// `x ^ e`
    Pow(f64),
    /// `b ^ x`
    RPow(f64),
    /// `x` if `x >= 0` else `slope * x`
    LeakyRelu(f64),
    /// `x` if `x > 0` else `alpha * (e^x - 1)`
    Elu(f64),
    /// `ln(1 + e^(beta x)) / beta`, linear above `threshold`
    Softplus {
        /// scale
        beta: f64,
        /// linear above this `beta * x`
        threshold: f64,
    },
    /// clamp into `[min, max]`
    Clamp(f64, f64),
    /// `max(x, min)`
    ClampMin(f64),
    /// `min(x, max)`
    ClampMax(f64),
    /// `x` if `x > threshold` else `value`
    Threshold {
        /// the threshold
        threshold: f64,
        /// the replacement value
        value: f64,
    },
    /// An op known only by name (no device kernel).
    Other(&'static str),
}

impl UnaryOp {
    /// The op's name (also its kernel name stem: `unary_<name>_<dtype>`).
    pub fn name(&self) -> &'static str {
        use UnaryOp::*;
        match self {
            Neg => "neg",
            Exp => "exp",
            Log => "log",
            Log2 => "log2",
            Log1p => "log1p",
            Expm1 => "expm1",
            Sqrt => "sqrt",
            Rsqrt => "rsqrt",
            Abs => "abs",
            Sign => "sign",
            Floor => "floor",
            Ceil => "ceil",
            Round => "round",
            Trunc => "trunc",
            Sin => "sin",
            Cos => "cos",
            Tan => "tan",
            Reciprocal => "reciprocal",
            Square => "square",
            Relu => "relu",
            Sigmoid => "sigmoid",
            Tanh => "tanh",
            Erf => "erf",
            Gelu => "gelu",
            GeluTanh => "gelu_tanh",
            Silu => "silu",
            AddScalar(_) => "add_scalar",
            MulScalar(_) => "mul_scalar",
            Pow(_) => "pow",
            RPow(_) => "rpow",
            LeakyRelu(_) => "leaky_relu",
            Elu(_) => "elu",
            Softplus { .. } => "softplus",
            Clamp(..) => "clamp",
            ClampMin(_) => "clamp_min",
            ClampMax(_) => "clamp_max",
            Threshold { .. } => "threshold",
            Other(n) => n,
        }
    }

    /// The scalar parameters passed to the kernel (`p`, `q`).
    pub fn params(&self) -> (f64, f64) {
        use UnaryOp::*;
        match *self {
            AddScalar(p) | MulScalar(p) | Pow(p) | RPow(p) | LeakyRelu(p) | Elu(p)
            | ClampMin(p) | ClampMax(p) => (p, 0.0),
            Softplus { beta, threshold } => (beta, threshold),
            Clamp(lo, hi) => (lo, hi),
            Threshold { threshold, value } => (threshold, value),
            _ => (0.0, 0.0),
        }
    }

    /// True when integer tensors have a kernel for this op.
    pub fn has_int_kernel(&self) -> bool {
        use UnaryOp::*;
        matches!(
            self,
            Neg | Abs
                | Sign
                | Square
                | Relu
                | AddScalar(_)
                | MulScalar(_)
                | Pow(_)
                | Clamp(..)
                | ClampMin(_)
                | ClampMax(_)
        )
    }
}

impl From<&'static str> for UnaryOp {
    /// Parses a parameterless op's name; unknown names become [`UnaryOp::Other`].
    fn from(name: &'static str) -> Self {
        use UnaryOp::*;
        match name {
            "neg" => Neg,
            "exp" => Exp,
            "log" => Log,
            "log2" => Log2,
            "log1p" => Log1p,
            "expm1" => Expm1,
            "sqrt" => Sqrt,
            "rsqrt" => Rsqrt,
            "abs" => Abs,
            "sign" => Sign,
            "floor" => Floor,
            "ceil" => Ceil,
            "round" => Round,
            "trunc" => Trunc,
            "sin" => Sin,
            "cos" => Cos,
            "tan" => Tan,
            "reciprocal" => Reciprocal,
            "square" => Square,
            "relu" => Relu,
            "sigmoid" => Sigmoid,
            "tanh" => Tanh,
            "erf" => Erf,
            "gelu" => Gelu,
            "gelu_tanh" => GeluTanh,
            "silu" => Silu,
            other => Other(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::UnaryOp;

    #[test]
    fn names_round_trip() {
        for n in ["neg", "exp", "relu", "gelu_tanh", "silu"] {
            assert_eq!(UnaryOp::from(n).name(), n);
        }
        assert_eq!(UnaryOp::from("frobnicate"), UnaryOp::Other("frobnicate"));
        assert_eq!(UnaryOp::Clamp(-1.0, 2.0).params(), (-1.0, 2.0));
        assert_eq!(UnaryOp::AddScalar(3.0).name(), "add_scalar");
    }
}
