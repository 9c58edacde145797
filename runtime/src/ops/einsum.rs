//! `einsum` by rewriting into differentiable ops: repeated letters in one
//! operand take a diagonal, letters no one else needs are summed away, and
//! each pair of operands is contracted by permute + reshape into one
//! batched matrix product.

use crate::Tensor;
use crate::autograd;
use crate::layout::Layout;

/// An operand with one letter per dimension.
struct Term {
    t: Tensor,
    letters: Vec<char>,
}

fn parse_letters(op_str: &str, s: &str) -> Vec<char> {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                c
            } else if c == '.' {
                panic!("einsum: ellipsis ('...') is not supported (equation {op_str:?})")
            } else {
                panic!(
                    "einsum: invalid subscript {c:?} in equation {op_str:?}; use letters a-z, A-Z"
                )
            }
        })
        .collect()
}

impl Tensor {
    /// The diagonal over dims `p < q` (same size), kept at `p`; a view.
    fn diagonal_view(&self, p: usize, q: usize) -> Tensor {
        let l = self.layout();
        let mut shape = l.shape().to_vec();
        let mut strides = l.strides().to_vec();
        strides[p] += strides[q];
        shape.remove(q);
        strides.remove(q);
        let layout = Layout::new(shape, strides, l.offset());
        let out = self.view_with_layout(layout.clone());
        let orig = self.shape().to_vec();
        Tensor::from_op(out, "DiagonalBackward0", &[self], move |g, _| {
            let z = Tensor::zeros_opts(orig.as_slice(), (g.dtype(), &g.device()));
            let mut dl = Layout::contiguous(&orig);
            let mut st = dl.strides().to_vec();
            st[p] += st[q];
            st.remove(q);
            dl = Layout::new(layout.shape().to_vec(), st, 0);
            autograd::no_grad(|| z.view_with_layout(dl).copy_(g));
            vec![Some(z)]
        })
    }

    /// Einstein summation over `operands` as `equation` describes, like
    /// `torch.einsum`: `"ij,jk->ik"` (matrix product), `"bij,bjk->bik"`,
    /// `"bhqd,bhkd->bhqk"`, `"bi,bi->b"`, `"ij->ji"`, `"ii->i"` (diagonal),
    /// `"ii"` (trace), `"ij->"`. Without `->` the output holds the letters
    /// that appear once, in alphabetical order. Ellipsis is not supported.
    /// Differentiable, since it is built from permutes, sums and `bmm`.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let a = Tensor::from([[1.0f32, 2.0], [3.0, 4.0]]);
    /// let b = Tensor::from([[1.0f32, 0.0], [0.0, 1.0]]);
    /// assert_eq!(Tensor::einsum("ij,jk->ik", &[&a, &b]).to_vec::<f32>(), vec![1.0, 2.0, 3.0, 4.0]);
    /// assert_eq!(Tensor::einsum("ii", &[&a]).item(), 5.0);
    /// ```
    pub fn einsum(equation: &str, operands: &[&Tensor]) -> Tensor {
        let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
        let (lhs, rhs) = match eq.split_once("->") {
            Some((l, r)) => (l, Some(r)),
            None => (eq.as_str(), None),
        };
        let inputs: Vec<Vec<char>> = lhs.split(',').map(|s| parse_letters(equation, s)).collect();
        if inputs.len() != operands.len() {
            panic!(
                "einsum: the equation {equation:?} names {} operands but {} were given",
                inputs.len(),
                operands.len()
            );
        }
        let mut sizes: Vec<(char, usize)> = Vec::new();
        for (i, (letters, t)) in inputs.iter().zip(operands).enumerate() {
            if letters.len() != t.dim() {
                panic!(
                    "einsum: the subscript for operand {i} has {} letters but the operand has shape {:?} (equation {equation:?})",
                    letters.len(),
                    t.shape()
                );
            }
            for (&c, &n) in letters.iter().zip(t.shape()) {
                match sizes.iter().find(|(l, _)| *l == c) {
                    Some(&(_, m)) if m != n => panic!(
                        "einsum: subscript {c:?} has size {n} for operand {i} which does not match the size {m} seen before (equation {equation:?})"
                    ),
                    Some(_) => {}
                    None => sizes.push((c, n)),
                }
            }
        }
        let output: Vec<char> = match rhs {
            Some(r) => {
                let out = parse_letters(equation, r);
                for (k, c) in out.iter().enumerate() {
                    if out[..k].contains(c) {
                        panic!(
                            "einsum: output subscript {c:?} appears more than once (equation {equation:?})"
                        );
                    }
                    if !sizes.iter().any(|(l, _)| l == c) {
                        panic!(
                            "einsum: output subscript {c:?} does not appear in the equation for any input operand (equation {equation:?})"
                        );
                    }
                }
                out
            }
            None => {
                let mut once: Vec<char> = sizes
                    .iter()
                    .map(|(c, _)| *c)
                    .filter(|c| inputs.iter().flatten().filter(|x| *x == c).count() == 1)
                    .collect();
                once.sort_unstable();
                once
            }
        };
        let mut terms: Vec<Term> = inputs
            .into_iter()
            .zip(operands)
            .map(|(letters, t)| Term {
                t: (*t).shallow_clone(),
                letters,
            })
            .collect();
        for term in &mut terms {
            take_diagonals(term);
        }
        // Contract left to right.
        let mut acc = terms.remove(0);
        let mut rest = terms;
        while !rest.is_empty() {
            let b = rest.remove(0);
            let keep: Vec<char> = output
                .iter()
                .chain(rest.iter().flat_map(|t| t.letters.iter()))
                .copied()
                .collect();
            acc = contract(acc, b, &keep);
        }
        // Sum what the output does not name, then order the letters.
        sum_unneeded(&mut acc, &[], &output);
        let perm: Vec<isize> = output
            .iter()
            .map(|c| {
                acc.letters
                    .iter()
                    .position(|l| l == c)
                    .expect("letter kept") as isize
            })
            .collect();
        if perm.iter().enumerate().all(|(i, &p)| i as isize == p) {
            acc.t
        } else {
            acc.t.permute(&perm)
        }
    }
}

/// Replaces every repeated letter in one operand by its diagonal.
fn take_diagonals(term: &mut Term) {
    loop {
        let dup = term.letters.iter().enumerate().find_map(|(q, c)| {
            term.letters[..q]
                .iter()
                .position(|x| x == c)
                .map(|p| (p, q))
        });
        match dup {
            Some((p, q)) => {
                term.t = term.t.diagonal_view(p, q);
                term.letters.remove(q);
            }
            None => return,
        }
    }
}

/// Sums away the letters of `term` that appear neither in `other` nor in `keep`.
fn sum_unneeded(term: &mut Term, other: &[char], keep: &[char]) {
    let dims: Vec<isize> = term
        .letters
        .iter()
        .enumerate()
        .filter(|(_, c)| !other.contains(c) && !keep.contains(c))
        .map(|(i, _)| i as isize)
        .collect();
    if dims.is_empty() {
        return;
    }
    term.t = term.t.sum_dims(Some(&dims), false);
    term.letters = term
        .letters
        .iter()
        .enumerate()
        .filter(|(i, _)| !dims.contains(&(*i as isize)))
        .map(|(_, c)| *c)
        .collect();
}

/// Contracts two operands into one whose letters are the batch letters,
/// then `a`'s own, then `b`'s own.
fn contract(mut a: Term, mut b: Term, keep: &[char]) -> Term {
    sum_unneeded(&mut a, &b.letters.clone(), keep);
    sum_unneeded(&mut b, &a.letters.clone(), keep);
    let in_b = |c: &char| b.letters.contains(c);
    let batch: Vec<char> = a
        .letters
        .iter()
        .filter(|c| in_b(c) && keep.contains(c))
        .copied()
        .collect();
    let contracted: Vec<char> = a
        .letters
        .iter()
        .filter(|c| in_b(c) && !keep.contains(c))
        .copied()
        .collect();
    let left: Vec<char> = a.letters.iter().filter(|c| !in_b(c)).copied().collect();
    let right: Vec<char> = b
        .letters
        .iter()
        .filter(|c| !a.letters.contains(c))
        .copied()
        .collect();
    let size = |t: &Term, c: char| t.t.shape()[t.letters.iter().position(|x| *x == c).unwrap()];
    let pos = |t: &Term, cs: &[char]| -> Vec<isize> {
        cs.iter()
            .map(|c| t.letters.iter().position(|x| x == c).unwrap() as isize)
            .collect()
    };
    let prod = |t: &Term, cs: &[char]| cs.iter().map(|&c| size(t, c)).product::<usize>();
    let (nb, nl, nc, nr) = (
        prod(&a, &batch),
        prod(&a, &left),
        prod(&a, &contracted),
        prod(&b, &right),
    );
    let pa: Vec<isize> = [pos(&a, &batch), pos(&a, &left), pos(&a, &contracted)].concat();
    let pb: Vec<isize> = [pos(&b, &batch), pos(&b, &contracted), pos(&b, &right)].concat();
    let am = a.t.permute(&pa).reshape_to(&[nb, nl, nc]);
    let bm = b.t.permute(&pb).reshape_to(&[nb, nc, nr]);
    let mut shape: Vec<usize> = batch.iter().map(|&c| size(&a, c)).collect();
    shape.extend(left.iter().map(|&c| size(&a, c)));
    shape.extend(right.iter().map(|&c| size(&b, c)));
    let t = am.bmm(&bm).reshape_to(&shape);
    Term {
        t,
        letters: [batch, left, right].concat(),
    }
}
