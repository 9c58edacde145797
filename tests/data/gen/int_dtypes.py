"""Expected values of tests/int_dtypes.rs (int32/int16 casts, arithmetic,
promotion, printing) and the fixture tests/data/int_dtypes.pt.

Run: /work/venv-torch/bin/python tests/data/gen/int_dtypes.py
Prints the values pasted into the test as literals.
"""
import torch

i64 = torch.tensor([2**31 + 5, -(2**31) - 1, 2**40 + 7, -3, 70000], dtype=torch.int64)
print("i64->i32", i64.to(torch.int32).tolist())
print("i64->i16", i64.to(torch.int16).tolist())
i32 = torch.tensor([40000, -40000, 70000, -1, 300], dtype=torch.int32)
print("i32->i16", i32.to(torch.int16).tolist())
print("i32->u8", i32.to(torch.uint8).tolist())
print("i32->bool", i32.to(torch.bool).tolist())
print("i32->f32", i32.to(torch.float32).tolist())
f = torch.tensor([-2.7, -0.5, 0.5, 2.7, 1000.9])
print("f32->i32", f.to(torch.int32).tolist())
print("f32->i16", f.to(torch.int16).tolist())
b = torch.tensor([True, False, True])
print("bool->i16", b.to(torch.int16).tolist())

a = torch.tensor([2147483647, -2147483648, 7, -7], dtype=torch.int32)
c = torch.tensor([1, 1, 2, 2], dtype=torch.int32)
print("i32 add", (a + c).tolist(), (a + c).dtype)
print("i32 sub", (a - c).tolist())
print("i32 mul", (a * c).tolist())
print("i32 div", (a / c).tolist(), (a / c).dtype)
print("i32 max", torch.maximum(a, c).tolist())
print("i32 lt", (a < c).tolist())
print("i32 neg", (-a).tolist())
print("i32 sum", a.sum().item(), a.sum().dtype)
s = torch.tensor([32767, -32768, 300, -300], dtype=torch.int16)
t = torch.tensor([1, 1, 300, 300], dtype=torch.int16)
print("i16 add", (s + t).tolist(), (s + t).dtype)
print("i16 mul", (s * t).tolist())
print("i16 sub", (s - t).tolist())
print("promote i32+i64", (a + c.to(torch.int64)).dtype)
print("promote i16+i32", (s + t.to(torch.int32)).dtype)
print("promote u8+i16", (torch.tensor([1], dtype=torch.uint8) + torch.tensor([1], dtype=torch.int16)).dtype)
print("promote i32+f32", (c + torch.tensor([0.5, 0.5, 0.5, 0.5])).dtype)
print("print i32", repr(torch.tensor([1, -2, 3], dtype=torch.int32)))
print("print i16", repr(torch.tensor([[1, 2], [30, -4]], dtype=torch.int16)))

torch.save({"i32": torch.tensor([[1, -2, 2147483647]], dtype=torch.int32),
            "i16": torch.tensor([-32768, 5, 32767], dtype=torch.int16)},
           "tests/data/int_dtypes.pt")
