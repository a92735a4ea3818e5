//! Dense layers: one linear layer forward and backward, a stack of them with ReLU (the dense
//! encoder's body and the decoder's), and the element-wise pieces the convolutions share.

use super::LinearAt;
use super::matmul::{MatRef, matmul};
use super::workspace::{sized, sized_list};

/// ReLU in place (NaN stays NaN, as in burn). Written as a select, not a branch, so that it
/// vectorises and does not mispredict on the random signs of activations.
pub(super) fn relu(v: &mut [f32]) {
    for x in v {
        *x = if *x < 0.0 { 0.0 } else { *x };
    }
}

/// Zeroes the gradient `d` where the ReLU output `h` is not positive.
pub(super) fn relu_backward(d: &mut [f32], h: &[f32]) {
    for (g, &h) in d.iter_mut().zip(h) {
        *g = if h <= 0.0 { 0.0 } else { *g };
    }
}

/// Adds the column sums of the row-major `[rows, cols]` matrix `d` to `out[cols]`.
pub(super) fn add_column_sums(out: &mut [f32], d: &[f32]) {
    for row in d.chunks_exact(out.len()) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

fn weight_of<'a>(params: &'a [f32], at: &LinearAt) -> MatRef<'a> {
    MatRef::new(
        &params[at.weight..at.weight + at.d_in * at.d_out],
        at.d_in,
        at.d_out,
    )
}

/// `out [n, d_out] = input [n, d_in] W + b`.
pub(super) fn linear_forward(out: &mut [f32], input: MatRef<'_>, params: &[f32], at: &LinearAt) {
    let bias = &params[at.bias..at.bias + at.d_out];
    for row in out.chunks_exact_mut(at.d_out) {
        row.copy_from_slice(bias);
    }
    matmul(out, input, weight_of(params, at), true);
}

/// Adds the layer's kernel and bias gradients for output gradient `d_out [n, d_out]` to `grad`,
/// and writes (or, with `true`, adds) the input gradient `d_out W^T` into `d_input`.
pub(super) fn linear_backward(
    grad: &mut [f32],
    params: &[f32],
    at: &LinearAt,
    input: MatRef<'_>,
    d_out: &[f32],
    d_input: Option<(&mut [f32], bool)>,
) {
    let n = input.rows();
    let d_out_m = MatRef::new(d_out, n, at.d_out);
    matmul(
        &mut grad[at.weight..at.weight + at.d_in * at.d_out],
        input.t(),
        d_out_m,
        true,
    );
    add_column_sums(&mut grad[at.bias..at.bias + at.d_out], d_out);
    if let Some((d_input, accumulate)) = d_input {
        matmul(d_input, d_out_m, weight_of(params, at).t(), accumulate);
    }
}

/// Dense layers with ReLU on `x: [n, d_in]`; each layer's output is kept in `outputs`.
pub(super) fn dense_stack_forward(
    layers: &[LinearAt],
    params: &[f32],
    x: &[f32],
    n: usize,
    outputs: &mut Vec<Vec<f32>>,
) {
    let outputs = sized_list(outputs, layers.len());
    for (i, at) in layers.iter().enumerate() {
        let (done, rest) = outputs.split_at_mut(i);
        let input = if i == 0 { x } else { &done[i - 1] };
        let out = sized(&mut rest[0], n * at.d_out);
        linear_forward(out, MatRef::new(input, n, at.d_in), params, at);
        relu(out);
    }
}

/// Back-propagates the gradient at the stack's output (in `d_a`) through its layers (using `d_b`
/// as scratch), adding kernel and bias gradients to `grad`; writes the input gradient into
/// `d_input` when asked.
#[allow(clippy::too_many_arguments)]
pub(super) fn dense_stack_backward(
    layers: &[LinearAt],
    params: &[f32],
    grad: &mut [f32],
    x: &[f32],
    n: usize,
    outputs: &[Vec<f32>],
    d_a: &mut Vec<f32>,
    d_b: &mut Vec<f32>,
    mut d_input: Option<&mut [f32]>,
) {
    for (i, at) in layers.iter().enumerate().rev() {
        let d_out = &mut d_a[..n * at.d_out];
        relu_backward(d_out, &outputs[i][..n * at.d_out]);
        let input = MatRef::new(if i == 0 { x } else { &outputs[i - 1] }, n, at.d_in);
        if i > 0 {
            let d_in = sized(d_b, n * at.d_in);
            linear_backward(grad, params, at, input, d_out, Some((d_in, false)));
            std::mem::swap(d_a, d_b);
        } else {
            let d_in = d_input.take().map(|d| (d, false));
            linear_backward(grad, params, at, input, d_out, d_in);
        }
    }
}
